//! The engine: the single task that changes state, and the one place in the
//! daemon that sleeps.
//!
//! Every change (an event, a deadline, an executor's answer, a clock move)
//! arrives as a [`Command`] on one channel and is applied in order, so there
//! are no concurrent writers and no optimistic retries. Commands that arrive
//! together share one store write and one flush (group commit): their
//! changes are merged as they are applied (later commands of the group read
//! the earlier ones' writes), written to the store in one commit, then one
//! fsync of the database and one of the audit file make them all durable, and only then are callers answered and executors called
//! (engineering-notes habits 1 and 3: persist intent, act, record outcome;
//! acknowledge only what is durable).
//!
//! Between commands the loop sleeps until the earliest deadline in the store
//! (or hold review date), capped at [`MAX_SLEEP`] so a suspended machine or a changed clock is
//! noticed, and re-reads the clock on every wake-up.
//!
//! # Files
//! - `mod.rs`: the [`Engine`] and its state, start-up ([`Engine::open`],
//!   [`Engine::catch_up`]) and the loop ([`Engine::run`]): the one place
//!   that sleeps.
//! - `handle.rs`: [`EngineHandle`], the [`Command`]s it sends and the
//!   answers (event results, reports); `error.rs`: [`EngineError`] and the
//!   failures reported without stopping.
//! - `step.rs`: one step: a group of commands applied, made durable,
//!   answered.
//! - `ingest.rs`: events applied to a resource or a whole tenant.
//! - `deadlines.rs`: the tick that runs what is due, and how long to sleep.
//! - `reviews.rs`: holds past their review date, reported once each.
//! - `privacy.rs`: personal data (issue 12): events about the account and
//!   its people, subjects whose time came, personal stores' answers.
//! - `safety.rs`: the clock-jump check, the mass-deletion guard, `approve`.
//! - `dispatch.rs`: executor calls, started once their intent is durable,
//!   and their outcomes; `notices.rs`: the same for notices to the tenant.
//! - `admin.rs`: reload, sweeps, `apply-policy`, the products-in-use check.
//! - `journal.rs`: effects and audit records into write sets; one flush per
//!   step. `pending.rs`: a step's writes merged into one store commit, and
//!   the reads that see them.
//! - `tests/`: the engine on the in-memory store, driven step by step
//!   (`burst.rs`: a burst begun a slice per step).

mod admin;
mod deadlines;
mod dispatch;
mod error;
mod handle;
mod ingest;
mod journal;
mod notices;
mod pending;
mod privacy;
mod reviews;
mod safety;
mod step;
#[cfg(test)]
mod tests;

pub use dispatch::CallOutcome;
pub use error::{EngineError, NoticeFailure, ProductsMissing};
pub use handle::{
    Approval, BatchSummary, ClockOp, Command, EngineHandle, EventResult, PolicyReport, ReloadReport, Rescheduled,
    SweepKind, SweepReport,
};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::clock_jump::Reading;
use crate::domain::guard::Guard;
use crate::domain::lifecycle::Rules;
use crate::store::{Store, WriteSet};
use crate::time::Timestamp;
use dispatch::Calls;
use journal::Journal;
use notices::Notices;
use safety::Safety;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Longest single sleep: a deadline is never missed by more than this if the
/// clock jumps or the machine was suspended.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The engine's state. Built by [`Engine::open`], run by [`Engine::run`].
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    /// Counters for `GET /metrics`, shared with the API.
    metrics: Arc<crate::metrics::Metrics>,
    /// The audit chain and file.
    journal: Journal,
    /// Writes not yet handed to the store (one commit per step or slice,
    /// issue 11); every read of a record goes through it.
    pending: pending::Pending,
    /// What stops deletions: pause, clock anomaly, the guard.
    safety: Safety,
    /// Executor calls queued and running.
    calls: Calls,
    /// Notifier calls queued and running.
    notices: Notices,
    /// `move_clock` callers, answered once due work has run.
    clock_waiters: Vec<oneshot::Sender<Result<Timestamp, EngineError>>>,
    /// Set on shutdown: no new call starts; running ones are drained.
    draining: bool,
    /// Sweeps asked for and not yet done, run a slice at a time between
    /// commands (see [`admin::SweepRun`]).
    sweeps: std::collections::VecDeque<admin::SweepRun>,
    /// The slice of the oldest sweep being read on a blocking thread.
    sweep_read: Option<tokio::task::JoinHandle<admin::SliceResult>>,
    /// Resources a sweep reads per slice ([`admin::SWEEP_SLICE`]; tests
    /// make it small).
    sweep_slice: usize,
    /// Most deletions a step begins ([`deadlines::START_SLICE`]; tests make
    /// it small).
    start_slice: usize,
    /// The last tick stopped at its start budget with due work left: the
    /// next step takes it up without sleeping, and a clock move is not
    /// answered until it is done.
    backlog: bool,
    /// A start-up's look-ahead (calls the previous run left in flight),
    /// kept until a tick has got through it.
    resume_until: Option<Timestamp>,
    /// When (monotonic) a tick last read the whole due index: a backlog
    /// holds back other due work for at most [`MAX_SLEEP`].
    whole_pass_at: Option<Duration>,
    /// systemd's watchdog: ping this often, and when next.
    watchdog: Option<(Duration, tokio::time::Instant)>,
    /// What holds deletions back, for systemd's status line.
    gates: watch::Sender<crate::service::Gates>,
    /// For executor and notifier calls to report back on.
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
}

impl Engine {
    /// Prepares the engine: brings the audit file level with the database
    /// (re-appending records a crash left only in the outbox) and builds the
    /// executors.
    pub fn open(
        store: Arc<dyn Store>,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Engine, EngineHandle), EngineError> {
        let journal = Journal::open(&*store, audit)?;
        let calls = Calls::new(&config);
        let safety = Safety::load(&*store)?;
        let notices = Notices::new(&config);
        let (tx, rx) = mpsc::channel(4096);
        let gates = safety.gates(config.safety.dry_run);
        let engine = Engine {
            store,
            clock,
            config,
            metrics,
            journal,
            pending: pending::Pending::default(),
            safety,
            calls,
            notices,
            clock_waiters: Vec::new(),
            draining: false,
            sweeps: std::collections::VecDeque::new(),
            sweep_read: None,
            sweep_slice: admin::SWEEP_SLICE,
            start_slice: deadlines::START_SLICE,
            backlog: false,
            resume_until: None,
            whole_pass_at: None,
            watchdog: None,
            gates: watch::Sender::new(gates),
            tx: tx.clone(),
            rx,
        };
        Ok((engine, EngineHandle { tx }))
    }

    /// Pings systemd's watchdog this often from the loop, after each step
    /// that completed: a stuck loop or store stops the pings.
    pub fn set_watchdog(&mut self, every: Duration) {
        self.watchdog = Some((every, tokio::time::Instant::now()));
    }

    /// Follows what holds deletions back (dry run, pause, guard, clock
    /// anomaly); updated after every step in which it changed.
    pub fn gates(&self) -> watch::Receiver<crate::service::Gates> {
        self.gates.subscribe()
    }

    /// Publishes the gates if a step changed them (a pause, an approve, a
    /// tripped guard, a clock anomaly, a reload switching dry run).
    fn publish_gates(&self) {
        let now = self.safety.gates(self.config.safety.dry_run);
        self.gates.send_if_modified(|g| std::mem::replace(g, now) != now);
    }

    /// The audit log, for readers (`GET /v1/audit`).
    pub fn audit_log(&self) -> Arc<Mutex<AuditLog>> {
        self.journal.log.clone()
    }

    /// Runs everything that fell due while the daemon was down and makes it
    /// durable; called once before the API opens.
    pub async fn catch_up(&mut self) -> Result<(), EngineError> {
        // Read from the store's indexes, not from every record (issue 11):
        // refuse a config missing products in use, and bring records of an
        // older version up to date.
        self.settle()?;
        let config = self.config.clone();
        self.check_products(&config)?.map_err(EngineError::ProductsInUse)?;
        let outdated = self.outdated_records(&config)?;
        // The guard's windows survive a restart: they are rebuilt from the
        // resources' own deletion start times (approved ones excepted).
        self.safety.guard = Guard::restore(self.recent_starts(&config)?);
        for r in outdated {
            let due = self.due_of(&r);
            let mut w = WriteSet::default();
            w.put_resource(r, due);
            self.commit(w)?;
        }
        // Time spent stopped is downtime, not a clock jump: the first
        // reading is taken as it is.
        let now = self.clock.now();
        self.safety.last_reading = Some(Reading { wall: now, mono: self.clock.monotonic() });
        // Calls the previous run left in flight are indexed at their
        // lease's end: look that far ahead so they resume at once.
        let ahead = self.calls.lease().max(dispatch::RESUME_HORIZON);
        self.tick_through(now, journal::later(now, ahead))?;
        self.calls.set_gate(self.rules().may_dispatch);
        self.make_durable().await?;
        self.dispatch();
        Ok(())
    }

    /// Runs the engine ([`Engine::run`]) on a thread of its own, driven by
    /// the current runtime's timers and I/O: its store reads and writes are
    /// synchronous (sled), and on a tokio worker they would hold that worker,
    /// one of two on these machines, and the requests queued on it (issue 11:
    /// stored state is never read on a thread that serves requests). Must be
    /// called within a tokio runtime.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<Result<(), EngineError>> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(self.run(shutdown)))
    }

    /// The loop: commands, deadlines, sleeps. Returns on shutdown, or with an
    /// error that must stop the daemon.
    ///
    /// On shutdown no new executor or notifier call starts; the running
    /// ones get `daemon.drain_timeout` to finish and have their outcome
    /// recorded. Calls still running then are parked: their intent is
    /// stored, so the next start calls them again (executors and notifier
    /// receivers are idempotent). Nothing in flight is lost either way.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), EngineError> {
        self.serve(&mut shutdown).await?;
        self.drain().await?;
        self.make_durable().await?;
        Ok(())
    }

    /// Commands, deadlines and sleeps until shutdown is asked for (or every
    /// handle is gone).
    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), EngineError> {
        loop {
            self.publish_gates();
            self.start_sweep_read();
            let sleep = self.sleep_duration()?;
            let sleep = self.pet_watchdog(sleep);
            tokio::select! {
                biased;
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return Ok(()) },
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return Ok(()) };
                    let cmds = self.gather(cmd);
                    self.step(cmds).await?;
                }
                // Commands waiting go first (biased): a sweep's slice is
                // read off this thread meanwhile, and repaired here when read.
                read = sweep_read_ready(&mut self.sweep_read), if self.sweep_read.is_some() => {
                    self.sweep_read = None;
                    self.sweep_read_done(read).await?;
                }
                _ = tokio::time::sleep(sleep) => self.step(Vec::new()).await?,
            }
        }
    }

    /// Pings systemd's watchdog when a ping is due (this is reached only
    /// after the previous step completed) and shortens `sleep` so the next
    /// ping is on time.
    fn pet_watchdog(&mut self, sleep: Duration) -> Duration {
        let Some((every, next)) = self.watchdog else { return sleep };
        let now = tokio::time::Instant::now();
        let next = if now >= next {
            crate::service::watchdog_ping();
            now + every
        } else {
            next
        };
        self.watchdog = Some((every, next));
        sleep.min(next - now)
    }

    /// Stopping: no new call starts; the running ones get
    /// `daemon.drain_timeout` to report back, and are parked after that.
    async fn drain(&mut self) -> Result<(), EngineError> {
        self.draining = true;
        self.calls.set_gate(false);
        let deadline = tokio::time::Instant::now() + self.config.daemon.drain_timeout.0;
        let running = |e: &Engine| e.calls.len() + e.notices.in_flight.len();
        if running(self) > 0 {
            tracing::info!(calls = running(self), "draining running calls before stopping");
        }
        while running(self) > 0 {
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let cmds = self.gather(cmd);
                    self.step(cmds).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(calls = running(self),
                        "drain deadline reached: calls still running are parked and resume at the next start");
                    break;
                }
            }
        }
        Ok(())
    }

    /// The rules the pure lifecycle needs, as of now.
    fn rules(&self) -> Rules {
        Rules {
            after_hold_release: self.config.safety.after_hold_release.to_chrono(),
            may_start: !self.config.safety.dry_run
                && !self.safety.paused
                && !self.safety.clock_anomaly
                && !self.safety.guard_tripped,
            may_dispatch: !self.config.safety.dry_run && !self.safety.paused,
            max_attempts: self.config.daemon.max_attempts,
            late_event_floor: self.config.safety.late_event_floor.to_chrono(),
        }
    }
}

/// The slice being read, once read (never, when none is: its branch is off).
async fn sweep_read_ready(
    read: &mut Option<tokio::task::JoinHandle<admin::SliceResult>>,
) -> Result<admin::SliceResult, tokio::task::JoinError> {
    match read {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}
