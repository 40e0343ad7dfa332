//! Starting and stopping the whole daemon, in readable stages: state dir,
//! store, audit log, clock, engine catch-up, API. Used by `retentiond serve`
//! and, in-process, by the integration tests and the benchmark.

use crate::api::{router, ApiState};
use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::{ClockSource, Config, Shared};
use crate::engine::{Engine, EngineError, EngineHandle, ReloadReport};
use crate::store::{SledStore, Store};
use crate::sweeps::Sweeps;
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
    /// The periodic sweeps could not start.
    #[error(transparent)]
    Sweeps(#[from] crate::sweeps::SweepsError),
    /// A reload was refused; the config in force stays.
    #[error("reload refused, the config in force stays: {0}")]
    Reload(String),
}

/// A running daemon.
pub struct Daemon {
    /// The address the API listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The clock the daemon reads.
    pub clock: Arc<dyn Clock>,
    /// Direct access to the engine (tests and the benchmark use the API instead).
    pub engine: EngineHandle,
    /// The config in force (swapped by [`Daemon::reload`]).
    pub config: Arc<Shared<Config>>,
    /// What holds deletions back, as the engine last published it (for
    /// systemd's status line).
    pub gates: watch::Receiver<crate::service::Gates>,
    tokens: Arc<Shared<Tokens>>,
    sweeps: tokio::sync::Mutex<Option<Sweeps>>,
    last_reload: Arc<std::sync::Mutex<Option<crate::api::wire::LastReload>>>,
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
        log_warnings(&config);
        let dir = &config.daemon.state_dir;
        private_state_dir(dir).map_err(|source| DaemonError::StateDir { path: dir.display().to_string(), source })?;

        // How long each stage of the start took, in the ready line: at 10M
        // resources a start takes about 20 s, and an operator (or the scale
        // benchmark) should see which stage holds it (issue 11).
        let started = std::time::Instant::now();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("db"), config.daemon.cache_capacity)?);
        let db_opened = started.elapsed();
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
        let tokens = load_tokens(&config)?;
        if config.notifier.is_none() {
            tracing::warn!("no [notifier]: notices to tenants are recorded as skipped, not sent");
        }

        let metrics = Arc::new(crate::metrics::Metrics::new());
        let engine_started = std::time::Instant::now();
        let (mut engine, handle) = Engine::open(store.clone(), audit, clock.clone(), config.clone(), metrics.clone())?;
        let engine_opened = engine_started.elapsed();
        if let Some(every) = crate::service::watchdog_interval() {
            tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog enabled");
            engine.set_watchdog(every);
        }
        let catch_up_started = std::time::Instant::now();
        engine.catch_up().await?;
        let caught_up = catch_up_started.elapsed();
        let audit_log = engine.audit_log();
        let gates = engine.gates();
        let (shutdown, shutdown_rx) = watch::channel(false);

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| DaemonError::Listen { addr: config.api.listen, source })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Listen { addr: config.api.listen, source })?;
        let store_handle = store.clone();
        let live = Arc::new(Shared::new((*config).clone()));
        let last_reload = Arc::new(std::sync::Mutex::new(None));
        let tokens = Arc::new(Shared::new(tokens));
        let app = router(ApiState {
            engine: handle.clone(),
            store,
            config: live.clone(),
            tokens: tokens.clone(),
            last_reload: last_reload.clone(),
            clock: clock.clone(),
            audit: audit_log,
            metrics,
            auth_failures: Arc::new(std::sync::Mutex::new(crate::auth::AuthFailures::default())),
        });
        let sweeps = Sweeps::start(&config.schedule, handle.clone()).await?;
        // Nothing below fails: the engine's thread and the accept loop start
        // only once a start that can still be refused (the port, the
        // schedule) has passed, so a refused start leaves no thread running
        // into the runtime's shutdown.
        let engine_task = engine.spawn(shutdown_rx.clone());
        // Our own accept loop, not axum::serve: connection limit and timeouts (issue 9).
        let server_task = tokio::spawn(crate::front::serve(listener, app, live.clone(), shutdown_rx));
        log_tls(&config.api, None);
        tracing::info!(%addr, state_dir = %dir.display(), tls = config.api.tls.is_some(),
            database_open_ms = db_opened.as_millis() as u64, engine_open_ms = engine_opened.as_millis() as u64,
            catch_up_ms = caught_up.as_millis() as u64, start_ms = started.elapsed().as_millis() as u64,
            "retentiond ready");
        Ok(Daemon {
            addr,
            clock,
            engine: handle,
            config: live,
            gates,
            tokens,
            sweeps: tokio::sync::Mutex::new(Some(sweeps)),
            last_reload,
            shutdown,
            store: store_handle,
            engine_task,
            server_task,
        })
    }

    /// Reloads the config file (SIGHUP). The new file is validated whole
    /// first (with its tokens file); on any error the config in force
    /// stays, and the refusal is logged and audited
    /// (`config.reload_failed`). On success the engine puts it in force
    /// (`config.reloaded`), the API and tokens switch, and the sweeps are
    /// rescheduled. Running buffers keep their deadlines: see
    /// `POST /v1/admin/apply-policy`.
    pub async fn reload(&self) -> Result<ReloadReport, DaemonError> {
        let result = self.reload_inner().await;
        let at = crate::time::fmt_rfc3339(self.clock.now());
        let status = match &result {
            Ok(r) => crate::api::wire::LastReload {
                at,
                ok: true,
                changed: Some(r.changed.clone()),
                added: Some(r.added.clone()),
                removed: Some(r.removed.clone()),
                error: None,
            },
            Err(e) => crate::api::wire::LastReload {
                at,
                ok: false,
                changed: None,
                added: None,
                removed: None,
                error: Some(e.to_string()),
            },
        };
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        result
    }

    async fn reload_inner(&self) -> Result<ReloadReport, DaemonError> {
        let current = self.config.get();
        let checked = crate::config::load(&current.path)
            .map_err(|e| e.to_string())
            .and_then(|new| match current.reload_blocker(&new) {
                Some(why) => Err(why.to_string()),
                None => Ok(new),
            })
            .and_then(|new| load_tokens(&new).map(|t| (new, t)).map_err(|e| e.to_string()));
        let (new, tokens) = match checked {
            Ok(ok) => ok,
            Err(why) => {
                tracing::error!(error = %why, "reload refused; the config in force stays");
                self.engine.reload_failed(why.clone()).await?;
                return Err(DaemonError::Reload(why.to_string()));
            }
        };
        let new = Arc::new(new);
        // The engine may still refuse (products its resources need are
        // missing); it audits that itself.
        let report = match self.engine.reload(new.clone()).await {
            Ok(report) => report,
            Err(EngineError::ProductsInUse(why)) => {
                tracing::error!(error = %why, "reload refused; the config in force stays");
                return Err(DaemonError::Reload(why.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        log_warnings(&new);
        log_tls(&new.api, Some(&current.api));
        self.config.set(new.clone());
        self.tokens.set(Arc::new(tokens));
        let mut sweeps = self.sweeps.lock().await;
        if new.schedule != current.schedule || sweeps.is_none() {
            if let Some(old) = sweeps.take() {
                old.stop().await;
            }
            // The new config is in force either way; a scheduler that cannot
            // start is logged and tried again at the next reload (deadlines
            // never depend on the sweeps).
            match Sweeps::start(&new.schedule, self.engine.clone()).await {
                Ok(s) => *sweeps = Some(s),
                Err(e) => tracing::error!(error = %e, "sweeps not running until the next reload"),
            }
        }
        Ok(report)
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
        if let Some(sweeps) = self.sweeps.lock().await.take() {
            sweeps.stop().await;
        }
        let _ = self.shutdown.send(true);
        // The engine is waited for whatever became of the server: it runs
        // on a thread of its own, which must end before the runtime does.
        let server = self.server_task.await;
        let engine = self.engine_task.await;
        match server {
            Err(e) => return Err(DaemonError::Join(e.to_string())),
            Ok(Err(e)) => tracing::warn!(error = %e, "api server ended with an error"),
            Ok(Ok(())) => {}
        }
        engine.map_err(|e| DaemonError::Join(e.to_string()))??;
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

/// Mode of the state directory: the daemon's user only.
const STATE_DIR_MODE: u32 = 0o700;

/// Creates the state directory 0700 whatever the umask (its parents as the
/// umask says), or tightens an existing one to 0700, logging what it was:
/// it holds the database and the audit log, which name tenants and
/// resources, and the database keeps what events said (a hold's authority
/// and reason). Under systemd, `StateDirectoryMode=0700` already does this;
/// run by hand, a umask of 022 made it 0755. If it cannot be tightened (not
/// ours), that is logged and the daemon starts anyway: deletions have
/// deadlines too.
fn private_state_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(STATE_DIR_MODE).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != STATE_DIR_MODE {
        match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(STATE_DIR_MODE)) {
            Ok(()) => tracing::warn!(dir = %dir.display(), was = format!("{mode:04o}"), "state_dir tightened to 0700"),
            Err(e) => tracing::warn!(dir = %dir.display(), mode = format!("{mode:04o}"), error = %e,
                "state_dir is not 0700 and cannot be changed; other users may read the database and audit log"),
        }
    }
    Ok(())
}

/// Settings that weaken a safeguard (see [`Config::warnings`]), logged each
/// time a config is put in force so they stay visible in the journal.
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
}

/// Which certificate the listener serves, at start and when a reload
/// changes it (`previous`), so the journal shows when a renewed certificate
/// went into force; the fingerprint is what `openssl x509 -fingerprint
/// -sha256` prints for the file.
fn log_tls(api: &crate::config::ApiConfig, previous: Option<&crate::config::ApiConfig>) {
    if previous.is_some_and(|p| p.tls == api.tls) {
        return;
    }
    if let Some(tls) = &api.tls {
        tracing::info!(
            cert = %tls.files().cert_file.display(),
            sha256 = tls.fingerprint(),
            client_certificates = tls.files().client_ca.as_ref().map_or("not asked for", |c| c.auth.as_str()),
            "serving TLS; new connections get this certificate"
        );
    }
}

/// The tokens file named by the config, or no tokens (every request but
/// `/healthz` refused).
fn load_tokens(config: &Config) -> Result<Tokens, crate::auth::TokensError> {
    match &config.api.tokens_file {
        Some(p) => Tokens::load(p),
        None => {
            tracing::warn!("no api.tokens_file: every request but /healthz will be refused");
            Ok(Tokens::default())
        }
    }
}
