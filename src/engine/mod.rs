//! The engine: the single task that changes state, and the one place in the
//! daemon that sleeps.
//!
//! Every change (an event, a deadline, an executor's answer, a clock move)
//! arrives as a [`Command`] on one channel and is applied in order, so there
//! are no concurrent writers and no optimistic retries. Commands that arrive
//! together share one flush (group commit): each is applied to the store at
//! once, then one fsync of the database and one of the audit file make them
//! all durable, and only then are callers answered and executors called
//! (engineering-notes habits 1 and 3: persist intent, act, record outcome;
//! acknowledge only what is durable).
//!
//! Between commands the loop sleeps until the earliest deadline in the store,
//! capped at [`MAX_SLEEP`] so a suspended machine or a changed clock is
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
//! - `safety.rs`: the clock-jump check, the mass-deletion guard, `approve`.
//! - `dispatch.rs`: executor and notifier calls, started once their intent
//!   is durable, and their outcomes.
//! - `admin.rs`: reload, sweeps, `apply-policy`, the products-in-use check.
//! - `journal.rs`: effects and audit records into write sets; one flush per
//!   step.

mod admin;
mod deadlines;
mod dispatch;
mod error;
mod handle;
mod ingest;
mod journal;
mod safety;
mod step;

pub use dispatch::CallOutcome;
pub use error::{EngineError, NoticeFailure, ProductsMissing};
pub use handle::{
    Approval, BatchSummary, ClockOp, Command, EngineHandle, EventResult, PolicyReport, ReloadReport, Rescheduled,
    SweepKind, SweepReport,
};

use crate::audit::{AuditHead, AuditLog, AuditRecord};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::guard::{Guard, HeldBatch};
use crate::domain::lifecycle::Rules;
use crate::executor::{Action, Executor};
use crate::notifier::Notifier;
use crate::store::{Flag, Store, WriteSet};
use crate::time::Timestamp;
use dispatch::{build_executors, call_limits, CopyKey};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest single sleep: a deadline is never missed by more than this if the
/// clock jumps or the machine was suspended.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The engine's state. Built by [`Engine::open`], run by [`Engine::run`].
pub struct Engine {
    store: Arc<dyn Store>,
    audit: Arc<Mutex<AuditLog>>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    executors: BTreeMap<String, Arc<Executor>>,
    head: AuditHead,
    unwritten: Vec<AuditRecord>,
    in_flight: HashSet<CopyKey>,
    to_dispatch: Vec<(CopyKey, String, Action)>,
    clock_waiters: Vec<oneshot::Sender<Result<Timestamp, EngineError>>>,
    paused: bool,
    /// A wall-clock jump beyond `safety.max_clock_jump` was seen.
    clock_anomaly: bool,
    /// The mass-deletion guard tripped.
    guard_tripped: bool,
    /// Deletion starts counted by the mass-deletion guard.
    guard: Guard,
    /// The batch the guard holds for approval (durable in the store).
    held_batch: Option<HeldBatch>,
    /// Resources of an approved batch, with the deletion date each was held
    /// for: they may start that deletion (and no other) without being
    /// judged again, at the next tick that may start deletions.
    approved: std::collections::HashMap<String, Timestamp>,
    /// Resources tracked, for the guard's fraction.
    tracked: u64,
    /// The last (wall, monotonic) clock reading, to notice jumps.
    last_reading: Option<(Timestamp, Duration)>,
    /// Whether deletions may run, shared with queued executor calls so a
    /// pause reaches calls already waiting for a permit.
    gate: Arc<AtomicBool>,
    /// Resources under a hold, shared with queued executor calls so a hold
    /// placed while a call waits for its permit stops it.
    held: Arc<Mutex<HashSet<String>>>,
    /// Hard time limit per store's executor call.
    limits: BTreeMap<String, Duration>,
    /// Counters for `GET /metrics`, shared with the API.
    metrics: Arc<crate::metrics::Metrics>,
    /// Executor call permits, one pool per store, so a store whose calls
    /// hang cannot hold up deletions in the others.
    permits: BTreeMap<String, Arc<Semaphore>>,
    /// Where notices go; None: they are recorded as skipped.
    notifier: Option<Arc<Notifier>>,
    /// Notices being sent, by key.
    notices_in_flight: HashSet<String>,
    /// Notices to send once their intent is durable: resource, key, payload.
    to_notify: Vec<(String, String, Value)>,
    notice_permits: Arc<Semaphore>,
    /// Set on shutdown: no new call starts; running ones are drained.
    draining: bool,
    /// systemd's watchdog: ping this often, and when next.
    watchdog: Option<(Duration, tokio::time::Instant)>,
    /// What holds deletions back, for systemd's status line.
    gates: watch::Sender<crate::service::Gates>,
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
}

impl Engine {
    /// Prepares the engine: brings the audit file level with the database
    /// (re-appending records a crash left only in the outbox) and builds the
    /// executors.
    pub fn open(
        store: Arc<dyn Store>,
        mut audit: AuditLog,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Engine, EngineHandle), EngineError> {
        let head = store.audit_head()?;
        let file_head = audit.head().clone();
        if file_head.seq > head.seq {
            return Err(EngineError::Audit(format!(
                "audit file is ahead of the database (file seq {}, database seq {}): refusing to start",
                file_head.seq, head.seq
            )));
        }
        if file_head.seq < head.seq {
            let missing = store.outbox_after(file_head.seq)?;
            if missing.first().map(|r| r.seq) != Some(file_head.seq + 1)
                || missing.last().map(|r| r.seq) != Some(head.seq)
            {
                return Err(EngineError::Audit(format!(
                    "audit records {}..={} are neither in the file nor in the outbox: refusing to start",
                    file_head.seq + 1,
                    head.seq
                )));
            }
            audit.append(&missing).map_err(|e| EngineError::Audit(e.to_string()))?;
            tracing::warn!(records = missing.len(), "re-appended audit records left in the outbox by a crash");
        }
        store.commit(WriteSet { outbox_done_through: Some(head.seq), ..Default::default() })?;
        let executors = build_executors(&config);
        let paused = store.flag(Flag::Paused)?;
        let clock_anomaly = store.flag(Flag::ClockAnomaly)?;
        let guard_tripped = store.flag(Flag::GuardTripped)?;
        let guard_state = store.guard_state()?;
        let tracked = store.resource_count()?;
        let limits = call_limits(&config);
        let notifier = config.notifier.as_ref().map(|n| Arc::new(Notifier::from_spec(n)));
        let (tx, rx) = mpsc::channel(4096);
        let permits = BTreeMap::new();
        let notice_permits = Arc::new(Semaphore::new(config.daemon.executor_concurrency));
        let gates = crate::service::Gates { dry_run: config.safety.dry_run, paused, guard_tripped, clock_anomaly };
        let engine = Engine {
            store,
            audit: Arc::new(Mutex::new(audit)),
            clock,
            config,
            executors,
            head,
            unwritten: Vec::new(),
            in_flight: HashSet::new(),
            to_dispatch: Vec::new(),
            clock_waiters: Vec::new(),
            paused,
            clock_anomaly,
            guard_tripped,
            // Rebuilt from the resources' start times in `catch_up`.
            guard: Guard::default(),
            held_batch: guard_state.held,
            approved: Default::default(),
            tracked,
            last_reading: None,
            gate: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(HashSet::new())),
            limits,
            metrics,
            permits,
            notifier,
            notices_in_flight: HashSet::new(),
            to_notify: Vec::new(),
            notice_permits,
            draining: false,
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
        let now = crate::service::Gates {
            dry_run: self.config.safety.dry_run,
            paused: self.paused,
            guard_tripped: self.guard_tripped,
            clock_anomaly: self.clock_anomaly,
        };
        self.gates.send_if_modified(|g| std::mem::replace(g, now) != now);
    }

    /// The audit log, for readers (`GET /v1/audit`).
    pub fn audit_log(&self) -> Arc<Mutex<AuditLog>> {
        self.audit.clone()
    }

    /// Runs everything that fell due while the daemon was down and makes it
    /// durable; called once before the API opens.
    pub async fn catch_up(&mut self) -> Result<(), EngineError> {
        // One pass at start: refuse a config missing products in use, and
        // bring records of an older version up to date.
        let (missing, outdated, started) = self.scan_products(&self.config.clone(), true)?;
        missing.map_err(EngineError::ProductsInUse)?;
        // The guard's windows survive a restart: they are rebuilt from the
        // resources' own deletion start times (approved ones excepted).
        self.guard = Guard::restore(started);
        for r in outdated {
            let due = self.due_of(&r);
            let mut w = WriteSet::default();
            w.put_resource(r, due);
            self.store.commit(w)?;
        }
        // Time spent stopped is downtime, not a clock jump: the first
        // reading is taken as it is.
        let now = self.clock.now();
        self.last_reading = Some((now, self.clock.monotonic()));
        self.tick(now)?;
        self.gate.store(self.rules().may_dispatch, Ordering::SeqCst);
        self.make_durable().await?;
        self.dispatch();
        Ok(())
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
        loop {
            self.publish_gates();
            let mut sleep = self.sleep_duration()?;
            if let Some((every, next)) = self.watchdog {
                // Reached only after the previous step completed.
                let now = tokio::time::Instant::now();
                let next = if now >= next {
                    crate::service::watchdog_ping();
                    now + every
                } else {
                    next
                };
                self.watchdog = Some((every, next));
                sleep = sleep.min(next - now);
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let cmds = self.gather(cmd);
                    self.step(cmds).await?;
                }
                _ = tokio::time::sleep(sleep) => self.step(Vec::new()).await?,
            }
        }
        self.draining = true;
        self.gate.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.config.daemon.drain_timeout.0;
        let running = |e: &Engine| e.in_flight.len() + e.notices_in_flight.len();
        if running(&self) > 0 {
            tracing::info!(calls = running(&self), "draining running calls before stopping");
        }
        while running(&self) > 0 {
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let cmds = self.gather(cmd);
                    self.step(cmds).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(calls = running(&self),
                        "drain deadline reached: calls still running are parked and resume at the next start");
                    break;
                }
            }
        }
        self.make_durable().await?;
        Ok(())
    }

    /// The rules the pure lifecycle needs, as of now.
    fn rules(&self) -> Rules {
        Rules {
            after_hold_release: self.config.safety.after_hold_release.to_chrono(),
            may_start: !self.config.safety.dry_run && !self.paused && !self.clock_anomaly && !self.guard_tripped,
            may_dispatch: !self.config.safety.dry_run && !self.paused,
            max_attempts: self.config.daemon.max_attempts,
            late_event_floor: self.config.safety.late_event_floor.to_chrono(),
        }
    }
}
