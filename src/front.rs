//! The HTTP front: accepts connections and serves the API on them, bounded.
//!
//! axum's own `serve` sets no timer, so hyper never applies a header-read
//! timeout, and it takes every connection it is offered: abuse testing held
//! 1,100 slow unauthenticated sockets open until the process ran out of file
//! descriptors and `/healthz` went unanswered (issue 9). Here each connection
//! is served by hyper's HTTP/1 server with a timer, so
//!
//! - a client must send a request's headers within `api.idle_timeout`, and a
//!   kept-alive connection idle that long is closed (hyper's header-read
//!   timeout runs from the moment the connection waits for a request);
//! - at most `api.max_connections` connections are served at once; a
//!   connection beyond that is closed as soon as it is accepted, so it holds
//!   a file descriptor for no time at all and the ones within the limit keep
//!   being answered.
//!
//! Bodies are bounded and timed by the handlers ([`crate::api`]), after
//! authentication. On shutdown the listener closes, idle connections close at
//! once, requests in flight get [`DRAIN`] to finish, and the rest are cut.

use crate::config::{Config, Shared};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long requests in flight may take to finish once shutdown begins.
/// The engine stops at the same time, so a request waiting for it is
/// answered (503) well before this.
pub const DRAIN: Duration = Duration::from_secs(10);

/// At most one warning per this long about refused connections or failing
/// accepts, with a count, so a flood does not flood the log too.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until `shutdown` turns true, within the
/// limits of `config`'s `[api]` (the connection limit as at start, the
/// timeout as in force when each connection is accepted).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: Arc<Shared<Config>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let max = config.get().api.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut refused = Throttled::new();
    let mut accept_errors = Throttled::new();
    loop {
        // Reap finished connection tasks so the set stays as small as the limit.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                // Out of file descriptors (EMFILE) or a connection reset
                // before it was accepted: wait a moment, never give up.
                accept_errors.warn(|n| tracing::warn!(error = %e, count = n, "accepting a connection failed"));
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            refused.warn(|n| {
                tracing::warn!(max_connections = max, count = n, "connection limit reached: new connections are closed")
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let idle = config.get().api.idle_timeout.0;
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            // Router is always ready (its poll_ready returns Ready at once).
            tower_service::Service::call(&mut app, req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!(open = connections.len(), "connections still busy {DRAIN:?} after shutdown began; closing them");
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// A warning that is logged at most once per [`WARN_EVERY`], counting the
/// occurrences in between.
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn new() -> Self {
        Throttled { last: None, count: 0 }
    }

    fn warn(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        if self.last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            log(self.count);
            self.last = Some(Instant::now());
            self.count = 0;
        }
    }
}
