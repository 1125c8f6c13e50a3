//! Serving a router on one listener with the limits a public port needs: a deadline for
//! each request head and a cap on open connections.
//!
//! `axum::serve` sets neither: a connection that sends half a request head, or nothing,
//! stays open forever, and enough of them (the adversarial pass after issue 18 held
//! 20,000) exhaust the process's file descriptors, so that every listener — the admin
//! API and the token endpoint too — stops answering, without a token being needed.
//! Here each listener serves HTTP/1.1 connections through hyper directly:
//!
//! - the request head (the first one, and every one after on a kept-alive connection)
//!   must arrive within [`Limits::header_read_timeout`], else the connection is closed
//!   (hyper's `header_read_timeout`, which needs a timer: axum's server gives it none);
//! - at most [`Limits::max_connections`] connections are open at once per listener (a
//!   fifth of the process's open-file limit);
//!   past that, accepting waits (new connections queue in the kernel's backlog) until one
//!   closes, so one flooded listener cannot take the descriptors another one needs;
//! - on shutdown no new connection is accepted, open ones finish what they are doing
//!   (hyper's graceful shutdown: kept-alive connections close after their current
//!   response) for up to [`Limits::drain`], then the rest are dropped — an open event
//!   stream never ends by itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client has to send a whole request head.
    pub header_read_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long open connections may take to finish at shutdown.
    pub drain: Duration,
}

impl Limits {
    /// What every Mandate listener uses: 10 s for a request head (as Go servers are
    /// commonly configured; a slow-header attack needs far longer), 10 s to drain, and
    /// a fifth of the process's open-file limit per listener (at most four listeners:
    /// API, gateway, OPA-compatible, and a fifth left for the store, key files and
    /// upstream connections), between 64 and 65,536.
    pub fn for_this_process() -> Self {
        let files = open_file_limit().unwrap_or(1024);
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: usize::try_from(files / 5)
                .unwrap_or(usize::MAX)
                .clamp(64, 65_536),
            drain: Duration::from_secs(10),
        }
    }
}

/// The soft limit on open files (`Max open files` in `/proc/self/limits`), if readable.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module
/// doc). Accept errors (e.g. out of descriptors) are logged and retried after a pause;
/// they never end the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Client resets and head timeouts end connections; nothing to report.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the drain period are dropped");
    }
}
