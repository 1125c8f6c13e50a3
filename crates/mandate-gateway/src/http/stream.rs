//! The upstream's response body on its way back to the agent: under an idle limit and
//! under the token's [`Lease`].
//!
//! - Silent for longer than the gateway's `timeout`, the body ends in an error
//!   ([`ResponseBodyError::Idle`]); each chunk restarts the wait, the whole may take
//!   longer.
//! - It lives only while the token that was decided on still authenticates as the
//!   agent it named ([`crate::lease`]): a containment, suspension or revocation, a
//!   stale snapshot, or the token's `exp` ends it with
//!   [`ResponseBodyError::Revoked`] — also while the agent has stopped reading — and
//!   every chunk is checked just before it is handed to the agent, so nothing is
//!   relayed on a token that fails now. A response already streaming is
//!   re-authenticated, not re-decided (as the MCP gateway's calls): a policy change
//!   applies to the next request.
//!
//! Every way but the upstream's own clean end ends the agent's response in an error,
//! never as if whole: hyper then aborts the connection (no final chunk, or fewer bytes
//! than `Content-Length`), so a truncated body cannot pass for a complete one.
//!
//! The upstream is read by a task of its own ([`relay`]), one chunk ahead of the agent,
//! so that the lease is watched whether or not the agent reads; the task ends, dropping
//! the upstream's connection, when the body ends, the lease ends, or the agent's side
//! is gone.

use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;

use crate::authz::AuthzError;
use crate::lease::{Access, End, Lease};

/// Why the upstream's response body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// No byte for longer than the gateway's timeout.
    #[error("the upstream's response body was silent for longer than {0:?}")]
    Idle(Duration),
    /// The upstream's stream broke.
    #[error("the upstream's response body broke off")]
    Upstream(#[source] reqwest::Error),
    /// The token no longer authenticates as the agent it was decided for.
    #[error("the token no longer holds the response: {0}")]
    Revoked(#[source] AuthzError),
    /// The relaying task stopped without the body's end (the lease ended meanwhile).
    #[error("the upstream's response body was cut off")]
    Cut,
}

/// What the relaying task hands over.
enum Piece {
    Chunk(Result<Bytes, ResponseBodyError>),
    /// The upstream's body ended cleanly.
    End,
}

fn revoked(end: End) -> ResponseBodyError {
    match end {
        End::Access(e) => ResponseBodyError::Revoked(e),
        End::SessionClosed => ResponseBodyError::Cut,
    }
}

/// The upstream's response `body`, relayed under the idle limit `idle` and `lease`.
/// After an error the stream ends.
pub fn relay<S>(
    body: S,
    idle: Duration,
    mut lease: Lease,
) -> impl Stream<Item = Result<Bytes, ResponseBodyError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    let access = lease.access().clone();
    let (tx, rx) = mpsc::channel::<Piece>(1);
    tokio::spawn(async move {
        let mut body = Box::pin(body);
        loop {
            let next = tokio::select! {
                end = lease.ended() => Some(Err(revoked(end))),
                next = tokio::time::timeout(idle, body.next()) => match next {
                    Ok(Some(Ok(chunk))) => Some(Ok(chunk)),
                    Ok(Some(Err(e))) => Some(Err(ResponseBodyError::Upstream(e))),
                    Ok(None) => None,
                    Err(_) => Some(Err(ResponseBodyError::Idle(idle))),
                },
                // The agent's side is gone: nothing to relay to.
                () = tx.closed() => return,
            };
            let Some(next) = next else {
                let _ = tx.send(Piece::End).await;
                return;
            };
            let last = next.is_err();
            tokio::select! {
                sent = tx.send(Piece::Chunk(next)) => {
                    if sent.is_err() || last {
                        return;
                    }
                }
                // INVARIANT (stream lease): an agent that stopped reading does not hold
                // the upstream past its token; the queued chunk is checked again, and
                // the dropped sender ends the agent's body in an error.
                _ = lease.ended() => return,
            }
        }
    });
    futures_util::stream::unfold(Some((rx, access)), |state| async move {
        let (mut rx, access) = state?;
        match rx.recv().await {
            Some(Piece::Chunk(Ok(chunk))) => {
                // INVARIANT (stream lease): nothing is relayed on a token that fails now.
                match check(&access) {
                    Ok(()) => Some((Ok(chunk), Some((rx, access)))),
                    Err(e) => Some((Err(e), None)),
                }
            }
            Some(Piece::Chunk(Err(e))) => Some((Err(e), None)),
            Some(Piece::End) => None,
            None => Some((Err(ResponseBodyError::Cut), None)),
        }
    })
}

fn check(access: &Access) -> Result<(), ResponseBodyError> {
    access.check().map_err(ResponseBodyError::Revoked)
}
