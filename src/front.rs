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
//! With `api.tls_cert_file` set, each connection makes its TLS handshake
//! (rustls, [`crate::tls`]) in its own task, within `api.idle_timeout`,
//! with the certificate in force when it was accepted: a reload that
//! brings a new one serves it to new connections. A client that speaks
//! plain HTTP to it gets a 400 saying to use `https://`.
//!
//! Bodies are bounded and timed by the handlers ([`crate::api`]), after
//! authentication. On shutdown the listener closes, idle connections close at
//! once, requests in flight get [`DRAIN`] to finish, and the rest are cut.

use crate::config::{Config, Shared};
use crate::tls::ServerTls;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

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
        // The config in force when the connection is accepted: a reload
        // changes the timeout and the certificate of new connections only.
        let live = config.get();
        let idle = live.api.idle_timeout.0;
        let tls = live.api.tls.as_ref().map(ServerTls::acceptor);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            // Router is always ready (its poll_ready returns Ready at once).
            tower_service::Service::call(&mut app, req)
        });
        let http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .keep_alive(true)
            .clone();
        // Subscribed now, before a shutdown can begin, so a connection whose
        // handshake ends after it is still told to close.
        let watcher = graceful.watcher();
        let mut stopping = shutdown.clone();
        connections.spawn(async move {
            // Held for the life of the task, handshake included.
            let _permit = permit;
            let served = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Some(acceptor) => {
                    // The handshake runs here, not in the accept loop, so a
                    // slow client holds up no one but itself; bounded like
                    // the headers, and dropped when shutdown begins.
                    let handshake = tokio::select! {
                        _ = stopping.wait_for(|stop| *stop) => return,
                        r = tokio::time::timeout(idle, tls_handshake(acceptor, stream)) => r,
                    };
                    match handshake {
                        Ok(Some(stream)) => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                        Ok(None) => return,
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not done within api.idle_timeout; closed");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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

/// What a client that speaks plain HTTP to the TLS listener is answered,
/// as plain HTTP, before the connection is closed: it says what to change,
/// where a failed handshake would only look like a dropped connection. Its
/// token has crossed the network in clear by then; the answer says so.
const PLAIN_HTTP_ANSWER: &str = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
     connection: close\r\ncontent-length: ";
/// How much of a plain HTTP request is read before it is answered.
const PLAIN_HTTP_READ: usize = 16 * 1024;
const PLAIN_HTTP_BODY: &str = "{\"error\":\"this address serves HTTPS (api.tls_cert_file is set): use https://; \
     a token sent with this request crossed the network in clear\"}";

/// Makes the TLS handshake of a new connection; None when it fails (logged
/// at debug: scanners and health probes of the wrong kind are routine). A
/// connection whose first byte is an ASCII letter is a plain HTTP request
/// (a TLS handshake starts with 22): it gets [`PLAIN_HTTP_ANSWER`].
async fn tls_handshake(acceptor: TlsAcceptor, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    let mut first = [0u8; 1];
    if matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_alphabetic()) {
        answer_plain_http(stream).await;
        tracing::debug!(?peer, "plain HTTP request on the TLS listener; answered 400");
        return None;
    }
    match acceptor.accept(stream).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

/// Writes the 400 of [`PLAIN_HTTP_ANSWER`] and closes, after reading the
/// request's headers (at most [`PLAIN_HTTP_READ`] bytes; the caller bounds
/// the time), so the close does not reset the connection before the client
/// has read the answer.
async fn answer_plain_http(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while seen.len() < PLAIN_HTTP_READ && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let answer = format!("{PLAIN_HTTP_ANSWER}{}\r\n\r\n{PLAIN_HTTP_BODY}", PLAIN_HTTP_BODY.len());
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
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
