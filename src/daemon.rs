//! Starting and stopping the whole daemon, in readable stages: state dir,
//! store, audit log, clock, engine catch-up, API. Used by `retentiond serve`
//! and, in-process, by the integration tests and the benchmark.

use crate::api::{router, ApiState};
use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::{ClockSource, Config};
use crate::scheduler::{Engine, EngineError, EngineHandle};
use crate::store::{SledStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory could not be created.
    #[error("state_dir {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened (another daemon may hold its lock).
    #[error("opening the database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The audit log could not be opened.
    #[error("opening the audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The tokens file is invalid.
    #[error(transparent)]
    Tokens(#[from] crate::auth::TokensError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The API address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A task panicked.
    #[error("internal task failed: {0}")]
    Join(String),
}

/// A running daemon.
pub struct Daemon {
    /// The address the API listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The clock the daemon reads.
    pub clock: Arc<dyn Clock>,
    /// Direct access to the engine (tests and the benchmark use the API instead).
    pub engine: EngineHandle,
    shutdown: watch::Sender<bool>,
    store: Arc<dyn Store>,
    engine_task: JoinHandle<Result<(), EngineError>>,
    server_task: JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    /// Opens state, catches up on deadlines that passed while stopped, and
    /// starts serving. Returns once the API accepts connections.
    pub async fn start(config: Config) -> Result<Daemon, DaemonError> {
        let config = Arc::new(config);
        let dir = &config.daemon.state_dir;
        std::fs::create_dir_all(dir)
            .map_err(|source| DaemonError::StateDir { path: dir.display().to_string(), source })?;

        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("db"), config.daemon.cache_capacity)?);
        let audit = AuditLog::open(dir, Some(config.daemon.audit_segment_bytes))?;
        let clock: Arc<dyn Clock> = match &config.clock {
            ClockSource::System => Arc::new(SystemClock::default()),
            ClockSource::Manual { start } => {
                // The persisted reading wins if later: time spent stopped is
                // downtime, not a jump back.
                let start = match (start, store.clock()?) {
                    (Some(s), Some(p)) => (*s).max(p),
                    (Some(s), None) => *s,
                    (None, Some(p)) => p,
                    (None, None) => SystemClock::default().now(),
                };
                Arc::new(ManualClock::new(start))
            }
        };
        let tokens = match &config.api.tokens_file {
            Some(p) => Tokens::load(p)?,
            None => {
                tracing::warn!("no api.tokens_file: every request but /healthz will be refused");
                Tokens::default()
            }
        };

        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (mut engine, handle) = Engine::open(store.clone(), audit, clock.clone(), config.clone(), metrics.clone())?;
        engine.catch_up().await?;
        let audit_log = engine.audit_log();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let engine_task = tokio::spawn(engine.run(shutdown_rx.clone()));

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| DaemonError::Listen { addr: config.api.listen, source })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Listen { addr: config.api.listen, source })?;
        let store_handle = store.clone();
        let app = router(ApiState {
            engine: handle.clone(),
            store,
            config: config.clone(),
            tokens: Arc::new(tokens),
            clock: clock.clone(),
            audit: audit_log,
            metrics,
        });
        let mut rx = shutdown_rx;
        let server_task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%addr, state_dir = %dir.display(), "retentiond ready");
        Ok(Daemon { addr, clock, engine: handle, shutdown, store: store_handle, engine_task, server_task })
    }

    /// Waits until the engine stops by itself (a fatal error) and returns it.
    pub async fn wait(&mut self) -> Result<(), DaemonError> {
        (&mut self.engine_task).await.map_err(|e| DaemonError::Join(e.to_string()))??;
        Ok(())
    }

    /// True once the engine has stopped.
    pub fn is_finished(&self) -> bool {
        self.engine_task.is_finished()
    }

    /// Stops taking requests, lets the engine make everything durable, and
    /// closes the store.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        let _ = self.shutdown.send(true);
        let server = self.server_task.await.map_err(|e| DaemonError::Join(e.to_string()))?;
        if let Err(e) = server {
            tracing::warn!(error = %e, "api server ended with an error");
        }
        self.engine_task.await.map_err(|e| DaemonError::Join(e.to_string()))??;
        // Connection tasks may hold the router's state (and so the store) a
        // moment longer; wait, bounded, until ours is the last handle, so the
        // database is closed (its lock released) when shutdown returns.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while Arc::strong_count(&self.store) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if Arc::strong_count(&self.store) > 1 {
            tracing::warn!("the database is still in use after shutdown");
        }
        Ok(())
    }
}
