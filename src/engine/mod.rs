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

use crate::audit::{AuditHead, AuditKind, AuditLog, AuditRecord};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::event::{Event, EventBody};
use crate::domain::guard::{Guard, GuardState, HeldBatch, Verdict};
use crate::domain::lifecycle::{Effect, Rejection, Resource, Rules};
use crate::duration::Dur;
use crate::executor::{Action, Executor, Target};
use crate::notifier::Notifier;
use crate::store::{EventOutcome, Flag, Store, StoreError, WriteSet};
use crate::time::{fmt_rfc3339, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest single sleep: a deadline is never missed by more than this if the
/// clock jumps or the machine was suspended.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Most commands applied before one shared flush.
const GROUP_MAX: usize = 1024;

/// Hard limit on one `fs` executor call (a hung mount must not hold a
/// permit forever); command calls get their own timeout plus a minute.
const FS_CALL_LIMIT: Duration = Duration::from_secs(600);

/// How the engine failed. Any of these stops the daemon: after a storage
/// failure nothing can be acknowledged or deleted safely (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(String),
    /// The engine has stopped and takes no more commands.
    #[error("the engine has stopped")]
    Stopped,
    /// The clock cannot be moved by hand.
    #[error("the clock is not manual (set [clock] source = \"manual\")")]
    ClockNotManual,
    /// The requested move would leave the representable range of time.
    #[error("the clock cannot be moved that far")]
    ClockRange,
    /// `approve` named a batch digest that is not the batch the guard holds
    /// (another batch, or none): nothing was approved.
    #[error("the guard holds {held}, not batch {given}: nothing was approved")]
    BatchMismatch {
        /// The digest the operator gave.
        given: String,
        /// What is held now.
        held: String,
    },
    /// `apply-policy` named a product that is not configured.
    #[error("product {0:?} is not configured")]
    UnknownProduct(String),
    /// The config leaves out products that tracked resources still need:
    /// events about them (a legal hold, a renewal) could not be applied.
    #[error("{0}")]
    ProductsInUse(ProductsMissing),
}

/// A clock move requested through the API (manual clock only).
#[derive(Clone, Copy, Debug)]
pub enum ClockOp {
    /// Time passes: wall and monotonic readings move together.
    Advance(Dur),
    /// The wall reading is set, as when someone sets a machine's clock.
    Set(Timestamp),
}

/// The answer for one event (product-spec §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventResult {
    /// The event's id.
    pub event_id: String,
    /// `applied`, `duplicate` or `rejected`.
    pub status: &'static str,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A request to the engine.
pub enum Command {
    /// Apply events (already validated); answered once they are durable.
    Ingest {
        /// The events, in request order.
        events: Vec<Event>,
        /// Receives one result per event.
        reply: oneshot::Sender<Result<Vec<EventResult>, EngineError>>,
    },
    /// Move the manual clock; answered when due work has run.
    Clock {
        /// The move.
        op: ClockOp,
        /// Receives the new reading.
        reply: oneshot::Sender<Result<Timestamp, EngineError>>,
    },
    /// Pause (true) or resume (false) deletions; answered once durable.
    Pause {
        /// The new setting.
        paused: bool,
        /// Receives Ok once recorded.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// An operator asks to retry a resource's stuck copies.
    Retry {
        /// The resource.
        resource: String,
        /// Only this store's copies, if given.
        store: Option<String>,
        /// Receives how many copies are retried.
        reply: oneshot::Sender<Result<usize, EngineError>>,
    },
    /// Lift a tripped guard (releasing exactly its held batch) and a clock
    /// anomaly; answered with what was lifted.
    Approve {
        /// The digest of the batch the operator saw; refused if another
        /// batch is held.
        batch_digest: Option<String>,
        /// Receives what was lifted.
        reply: oneshot::Sender<Result<Approval, EngineError>>,
    },
    /// A notifier call finished: Ok, or why it failed.
    NoticeResult {
        /// The resource.
        resource: String,
        /// The notice's dedupe key.
        key: String,
        /// What happened.
        outcome: Result<(), NoticeFailure>,
    },
    /// Put a new, validated config in force (SIGHUP).
    Reload {
        /// The new config.
        config: Arc<Config>,
        /// Receives what changed, once recorded.
        reply: oneshot::Sender<Result<ReloadReport, EngineError>>,
    },
    /// Record a reload that was refused (the old config stays).
    ReloadFailed {
        /// Why (file, line, column and message).
        error: String,
        /// Receives Ok once recorded.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Run a periodic sweep now.
    Sweep {
        /// Which.
        kind: SweepKind,
        /// Receives what it did.
        reply: oneshot::Sender<Result<SweepReport, EngineError>>,
    },
    /// Apply a product's policy in force to its running buffers.
    ApplyPolicy {
        /// The product.
        product: String,
        /// Receives what was rescheduled.
        reply: oneshot::Sender<Result<PolicyReport, EngineError>>,
    },
    /// Answered after a full step (tick and flush): the watchdog's proof
    /// that the loop and the store are healthy.
    Ping {
        /// Receives Ok.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// An executor call finished (or was not run).
    CopyResult {
        /// The resource.
        resource: String,
        /// The store.
        store: String,
        /// The copy.
        copy: String,
        /// What happened.
        outcome: CallOutcome,
    },
}

/// What `approve` lifted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// `guard` and/or `clock_anomaly`.
    pub approved: Vec<&'static str>,
    /// The batch released, if the guard held one: exactly these resources
    /// may now start deleting (those still due); anything that came due
    /// since is judged afresh.
    pub batch: Option<BatchSummary>,
}

/// A held batch as shown to operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    /// How many resources.
    pub size: usize,
    /// Hex SHA-256 of the sorted ids (see [`crate::domain::guard::batch_digest`]).
    pub digest: String,
}

/// A config that leaves out products whose resources are not all purged:
/// without their policy, events about those resources (a tenant-wide legal
/// hold, a renewal) could not reach them. Refused at start and at reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductsMissing {
    /// The config file.
    pub path: std::path::PathBuf,
    /// Each missing product with how many unsettled resources need it.
    pub products: BTreeMap<String, u64>,
}

impl std::fmt::Display for ProductsMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.products.iter().map(|(p, n)| format!("{p:?} ({n} resources)")).collect();
        write!(
            f,
            "{}: products still in use are missing: {}; keep their [products.*] sections until every resource of them is purged",
            self.path.display(),
            list.join(", ")
        )
    }
}

impl std::error::Error for ProductsMissing {}

/// Why a notice did not reach the notifier (recorded in `notice.failed`;
/// the notice is retried).
#[derive(Debug, thiserror::Error)]
pub enum NoticeFailure {
    /// The notifier answered with an error.
    #[error(transparent)]
    Notifier(#[from] crate::notifier::NotifyError),
    /// No answer within the notifier's limit (plus a margin).
    #[error("no answer within {secs}s")]
    NoAnswer {
        /// The limit, in seconds.
        secs: u64,
    },
}

/// How an executor call ended.
#[derive(Debug)]
pub enum CallOutcome {
    /// The copy is gone.
    Done,
    /// It failed (text: identifiers and codes only); retried later.
    Failed(String),
    /// Deletions were paused before the call started: not an attempt, the
    /// copy waits.
    NotRun,
}

/// The periodic sweeps of `[schedule]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    /// Re-derives every resource's next deadline from its stored state and
    /// repairs the due index where it differs (after a reload, or if an
    /// entry was ever lost), then runs whatever is due.
    Reconcile,
    /// Makes sure every restricted backup whose expiry has passed is due,
    /// so its purge is not left waiting (privacy policy 5.3.3).
    BackupExpiry,
}

impl SweepKind {
    /// Its name in `[schedule]`, logs and the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepKind::Reconcile => "reconcile",
            SweepKind::BackupExpiry => "backup_expiry",
        }
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Resources looked at.
    pub checked: u64,
    /// Due-index entries repaired (reconcile) or made due (backup expiry).
    pub fixed: u64,
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Every product with its policy version now in force.
    pub products: BTreeMap<String, String>,
    /// Products whose policy version changed (their running buffers keep
    /// their deadlines until `apply-policy`).
    pub changed: Vec<String>,
    /// Products new in this config.
    pub added: Vec<String>,
    /// Products no longer configured (their resources wait, failing closed).
    pub removed: Vec<String>,
}

/// What `apply-policy` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// The product.
    pub product: String,
    /// Its policy version now applied.
    pub policy_version: String,
    /// Deadlines that moved: resource, from, to.
    pub rescheduled: Vec<Rescheduled>,
    /// Resources of the product left as they were.
    pub unchanged: u64,
}

/// One deadline moved by `apply-policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rescheduled {
    /// The resource.
    pub resource: String,
    /// Its deletion date before.
    pub from: String,
    /// Its deletion date now.
    pub to: String,
}

/// A cheap handle for sending commands to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
}

impl EngineHandle {
    /// Applies events; returns once they are durable.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<Vec<EventResult>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Ingest { events, reply }).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Pauses or resumes deletions (no deletion starts and no executor is
    /// called while paused); returns once durable.
    pub async fn set_paused(&self, paused: bool) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Pause { paused, reply }).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Retries the stuck copies of a resource (all, or one store's).
    pub async fn retry(&self, resource: String, store: Option<String>) -> Result<usize, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Retry { resource, store, reply }).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Lifts a tripped mass-deletion guard (releasing exactly the batch it
    /// holds, checked against `batch_digest` when given) and a clock anomaly.
    pub async fn approve(&self, batch_digest: Option<String>) -> Result<Approval, EngineError> {
        self.call(|reply| Command::Approve { batch_digest, reply }).await
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Puts a validated config in force; returns what changed.
    pub async fn reload(&self, config: Arc<Config>) -> Result<ReloadReport, EngineError> {
        self.call(|reply| Command::Reload { config, reply }).await
    }

    /// Records a refused reload in the audit log.
    pub async fn reload_failed(&self, error: String) -> Result<(), EngineError> {
        self.call(|reply| Command::ReloadFailed { error, reply }).await
    }

    /// Runs a sweep now (the cron jobs and the tests call this).
    pub async fn sweep(&self, kind: SweepKind) -> Result<SweepReport, EngineError> {
        self.call(|reply| Command::Sweep { kind, reply }).await
    }

    /// Applies the product's policy in force to its running buffers, never
    /// bringing a deletion closer than `safety.min_notice` from now.
    pub async fn apply_policy(&self, product: String) -> Result<PolicyReport, EngineError> {
        self.call(|reply| Command::ApplyPolicy { product, reply }).await
    }

    /// Returns once the engine has completed a full step.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.call(|reply| Command::Ping { reply }).await
    }

    /// Moves the manual clock; returns the new reading once due work has run
    /// or is waiting on a retry.
    pub async fn move_clock(&self, op: ClockOp) -> Result<Timestamp, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Clock { op, reply }).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }
}

type CopyKey = (String, String, String);

/// Resources changed by one event, with their effects and next due time, or
/// why the event is refused.
type Applied = Result<Vec<(Resource, Vec<Effect>, Option<Timestamp>)>, Rejection>;

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

    /// The first command and whatever else is already queued, up to a group.
    fn gather(&mut self, first: Command) -> Vec<Command> {
        let mut cmds = vec![first];
        while cmds.len() < GROUP_MAX {
            match self.rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        cmds
    }

    /// Applies a group of commands and whatever fell due, makes it durable,
    /// then answers and calls executors.
    async fn step(&mut self, cmds: Vec<Command>) -> Result<(), EngineError> {
        let mut ingest_replies = Vec::new();
        let mut pause_replies = Vec::new();
        let mut approve_replies = Vec::new();
        let mut retry_replies = Vec::new();
        let mut done: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for cmd in cmds {
            match cmd {
                Command::Ingest { events, reply } => {
                    let now = self.clock.now();
                    let mut results = Vec::with_capacity(events.len());
                    for ev in &events {
                        let result = self.ingest_one(ev, now)?;
                        self.metrics.event(ev.type_name(), result.status);
                        results.push(result);
                    }
                    ingest_replies.push((reply, results));
                }
                Command::Clock { op, reply } => match self.clock.as_manual() {
                    None => {
                        let _ = reply.send(Err(EngineError::ClockNotManual));
                    }
                    Some(manual) => {
                        let now = match op {
                            ClockOp::Advance(d) => manual.advance(d.to_chrono()),
                            ClockOp::Set(t) => Some(manual.set(t)),
                        };
                        let Some(now) = now else {
                            let _ = reply.send(Err(EngineError::ClockRange));
                            continue;
                        };
                        self.store.commit(WriteSet { clock: Some(now), ..Default::default() })?;
                        tracing::info!(now = %fmt_rfc3339(now), "manual clock moved");
                        self.clock_waiters.push(reply);
                    }
                },
                Command::Pause { paused, reply } => {
                    let now = self.clock.now();
                    let mut w = WriteSet { flags: vec![(Flag::Paused, paused)], ..Default::default() };
                    let kind = if paused { AuditKind::DeletionsPaused } else { AuditKind::DeletionsResumed };
                    self.record(&mut w, now, kind, None, None, json!({}));
                    self.store.commit(w)?;
                    self.paused = paused;
                    tracing::warn!(paused, "deletions {}", if paused { "paused" } else { "resumed" });
                    pause_replies.push(reply);
                }
                Command::Retry { resource, store, reply } => {
                    let now = self.clock.now();
                    let mut n = 0;
                    if let Some(mut r) = self.store.resource(&resource)? {
                        n = r.copies.iter().filter(|c| c.stuck && store.as_ref().is_none_or(|s| *s == c.store)).count();
                        let fx = r.retry_stuck(store.as_deref(), now);
                        if !fx.is_empty() {
                            let mut w = WriteSet::default();
                            self.effects(&mut w, now, &mut r, fx);
                            let due = self.due_of(&r);
                            w.put_resource(r, due);
                            self.store.commit(w)?;
                        }
                    }
                    retry_replies.push((reply, n));
                }
                Command::Approve { batch_digest, reply } => {
                    let result = self.approve(batch_digest)?;
                    approve_replies.push((reply, result));
                }
                Command::CopyResult { resource, store, copy, outcome } => {
                    self.in_flight.remove(&(resource.clone(), store.clone(), copy.clone()));
                    self.copy_result(&resource, &store, &copy, outcome)?;
                }
                Command::NoticeResult { resource, key, outcome } => {
                    self.notices_in_flight.remove(&key);
                    self.notice_result(&resource, &key, outcome)?;
                }
                Command::Reload { config, reply } => {
                    let result = self.reload(config)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(result);
                    }));
                }
                Command::ReloadFailed { error, reply } => {
                    let now = self.clock.now();
                    let mut w = WriteSet::default();
                    self.record(&mut w, now, AuditKind::ConfigReloadFailed, None, None, json!({ "error": error }));
                    self.store.commit(w)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(Ok(()));
                    }));
                }
                Command::Sweep { kind, reply } => {
                    let report = self.sweep(kind)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(Ok(report));
                    }));
                }
                Command::ApplyPolicy { product, reply } => {
                    let result = self.apply_policy(&product)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(result);
                    }));
                }
                Command::Ping { reply } => done.push(Box::new(move || {
                    let _ = reply.send(Ok(()));
                })),
            }
        }
        self.check_clock()?;
        let now = self.clock.now();
        self.tick(now)?;
        self.gate.store(self.rules().may_dispatch && !self.draining, Ordering::SeqCst);
        self.make_durable().await?;
        for answer in done {
            answer();
        }
        for (reply, result) in approve_replies {
            let _ = reply.send(result);
        }
        for (reply, n) in retry_replies {
            let _ = reply.send(Ok(n));
        }
        for (reply, results) in ingest_replies {
            let _ = reply.send(Ok(results));
        }
        for reply in pause_replies {
            let _ = reply.send(Ok(()));
        }
        self.dispatch();
        if self.in_flight.is_empty() && self.notices_in_flight.is_empty() {
            let now = self.clock.now();
            for w in self.clock_waiters.drain(..) {
                let _ = w.send(Ok(now));
            }
        }
        Ok(())
    }

    /// An operator lifts a tripped guard and a clock anomaly. The held batch
    /// is released exactly: its resources may start the deletion they were
    /// held for without being judged again (and are not counted); anything
    /// else is judged as before. An approval never resets the windows.
    fn approve(&mut self, batch_digest: Option<String>) -> Result<Result<Approval, EngineError>, EngineError> {
        if let Some(given) = batch_digest {
            let held = self.held_batch.as_ref().map(|b| b.digest.clone());
            if held.as_deref() != Some(given.as_str()) {
                let held = held.map_or_else(|| "no batch".to_string(), |d| format!("batch {d}"));
                return Ok(Err(EngineError::BatchMismatch { given, held }));
            }
        }
        let mut lifted = Vec::new();
        if self.guard_tripped {
            lifted.push("guard");
        }
        if self.clock_anomaly {
            lifted.push("clock_anomaly");
        }
        let now = self.clock.now();
        let batch = self.held_batch.take();
        let summary = batch.as_ref().map(|b| BatchSummary { size: b.size(), digest: b.digest.clone() });
        let state = GuardState { held: None };
        let mut w = WriteSet {
            flags: vec![(Flag::GuardTripped, false), (Flag::ClockAnomaly, false)],
            guard: Some(state),
            ..Default::default()
        };
        let mut data = json!({ "lifted": lifted });
        if let Some(b) = &summary {
            data["batch_size"] = json!(b.size);
            data["batch_digest"] = json!(b.digest);
        }
        self.record(&mut w, now, AuditKind::GuardApproved, None, None, data);
        self.store.commit(w)?;
        self.guard_tripped = false;
        self.clock_anomaly = false;
        self.approved = batch.map(|b| b.candidates().collect()).unwrap_or_default();
        self.last_reading = Some((now, self.clock.monotonic()));
        tracing::warn!(?lifted, batch = summary.as_ref().map(|b| b.size), "deletions approved by an operator");
        Ok(Ok(Approval { approved: lifted, batch: summary }))
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

    /// safety.max_clock_jump: compares how far the wall clock moved with how
    /// far the monotonic clock moved since the last step. A gap beyond the
    /// limit (someone set the clock, NTP stepped it, the machine was
    /// suspended) stops deletions until an operator approves.
    fn check_clock(&mut self) -> Result<(), EngineError> {
        let (wall, mono) = (self.clock.now(), self.clock.monotonic());
        if let Some((w0, m0)) = self.last_reading {
            let elapsed = chrono::Duration::from_std(mono.saturating_sub(m0)).unwrap_or(chrono::Duration::MAX);
            let expected = crate::domain::lifecycle::later(w0, elapsed);
            let jump = wall.signed_duration_since(expected);
            if jump.abs() > self.config.safety.max_clock_jump.to_chrono() {
                let mut w = WriteSet { flags: vec![(Flag::ClockAnomaly, true)], ..Default::default() };
                let data = json!({"expected": fmt_rfc3339(expected), "wall": fmt_rfc3339(wall),
                                  "jump_seconds": jump.num_seconds()});
                self.record(&mut w, wall, AuditKind::ClockAnomaly, None, None, data);
                self.store.commit(w)?;
                self.clock_anomaly = true;
                tracing::error!(jump_seconds = jump.num_seconds(), "wall clock jumped: deletions stop until approved");
            }
        }
        self.last_reading = Some((wall, mono));
        Ok(())
    }

    /// safety.guard: the resources that may start deleting at `now`. The
    /// whole batch that would start is judged before any of it starts
    /// (issue: the guard let the first part of a mass deletion through):
    /// it starts whole, or is held whole and the guard trips. Resources of
    /// a batch an operator approved start without being judged again.
    fn judge_starts(&mut self, now: Timestamp) -> Result<Starters, EngineError> {
        let rules = Rules { may_start: true, may_dispatch: false, ..self.rules() };
        let mut fresh = Vec::new();
        let mut starters = Starters::default();
        for (_, id) in self.store.due(now, usize::MAX)? {
            let Some(r) = self.store.resource(&id)? else { continue };
            if r.state.is_final() {
                continue;
            }
            let Some(policy) = self.config.products.get(&r.product) else { continue };
            // What advancing it would do, on a copy: the pure lifecycle has
            // no side effects, so this is exactly what the tick will do.
            let mut probe = r.clone();
            probe.advance(policy, now, rules, &|_, _| true, &|_| true);
            let (Some(b), crate::domain::lifecycle::State::Deleting) = (&probe.deciding, probe.state) else { continue };
            if self.approved.get(&id) == Some(&b.delete_after) {
                starters.approved.insert(id);
            } else {
                fresh.push((id, b.delete_after));
            }
        }
        // The approval covered the batch as it stood: whatever of it is not
        // due now, or is due for another deletion (renewed, then expired
        // again), is judged like any other if it comes due.
        self.approved.clear();
        let g = &self.config.safety.guard;
        match self.guard.judge(now, fresh.clone(), self.tracked, &g.short(), &g.long()) {
            Verdict::Start => starters.judged.extend(fresh.into_iter().map(|(id, _)| id)),
            Verdict::Hold(batch) => self.trip_guard(now, batch)?,
        }
        Ok(starters)
    }

    /// Applies one event. Time-driven transitions are left to the tick that
    /// follows the whole group, so the events of one request (a replayed
    /// history, say) all land before any deadline is evaluated: a renewal
    /// in the same request as an old creation keeps the resource.
    fn ingest_one(&mut self, ev: &Event, now: Timestamp) -> Result<EventResult, EngineError> {
        let result = |status, error: Option<String>| EventResult { event_id: ev.event_id.clone(), status, error };
        if self.store.event(&ev.event_id)?.is_some() {
            return Ok(result("duplicate", None));
        }
        // Nothing of an event dated too far ahead is stored, so the sender
        // may retry it once clocks agree.
        let skew = self.config.safety.max_future_skew;
        if ev.at > crate::domain::lifecycle::later(now, skew.to_chrono()) {
            return Ok(result(
                "rejected",
                Some(format!(
                    "at {} is more than safety.max_future_skew ({skew}) ahead of the daemon's clock ({})",
                    fmt_rfc3339(ev.at),
                    fmt_rfc3339(now)
                )),
            ));
        }
        let mut w = WriteSet::default();
        let outcome = match &ev.resource {
            Some(id) => self.apply_to_resource(ev, id, now),
            None => self.apply_to_tenant(ev, now, &mut w),
        }?;
        let base = json!({"event_id": ev.event_id, "type": ev.type_name(), "at": fmt_rfc3339(ev.at)});
        let (status, error) = match outcome {
            Ok(changes) => {
                let mut data = base;
                if ev.resource.is_none() {
                    data["resources"] = json!(changes.len());
                }
                self.record(&mut w, now, AuditKind::EventApplied, Some(&ev.tenant), ev.resource.as_deref(), data);
                for (mut r, fx, due) in changes {
                    self.effects(&mut w, now, &mut r, fx);
                    w.put_resource(r, due);
                }
                ("applied", None)
            }
            Err(rejection) => {
                let mut data = base;
                data["error"] = json!(rejection.message);
                self.record(&mut w, now, AuditKind::EventRejected, Some(&ev.tenant), ev.resource.as_deref(), data);
                if rejection.retryable {
                    // A later event (the creation, the hold) may make this
                    // one valid: its id stays free so the sender can retry.
                    self.store.commit(w)?;
                    return Ok(result("rejected", Some(rejection.message)));
                }
                ("rejected", Some(rejection.message))
            }
        };
        w.events.push((ev.event_id.clone(), EventOutcome { status: status.into(), resource: ev.resource.clone() }));
        self.store.commit(w)?;
        Ok(result(status, error))
    }

    /// Applies a resource-scoped event; returns the changed resource.
    fn apply_to_resource(&mut self, ev: &Event, id: &str, now: Timestamp) -> Result<Applied, EngineError> {
        let config = self.config.clone();
        let rules = self.rules();
        let applied = match self.store.resource(id)? {
            None => {
                let policy = match &ev.body {
                    EventBody::Created { product, .. } => config.products.get(product),
                    _ => None,
                };
                match policy {
                    None => Err(Rejection { message: format!("unknown resource {id:?}"), retryable: true }),
                    Some(policy) => {
                        let holds = self.store.tenant_holds(&ev.tenant)?.holds;
                        Resource::create(ev, policy, &holds, now, rules).map(|r| {
                            self.tracked += 1;
                            let due = r.next_due(policy);
                            vec![(r, Vec::new(), due)]
                        })
                    }
                }
            }
            Some(mut r) => match config.products.get(&r.product) {
                None => Err(Rejection::new(format!("product {:?} is not configured", r.product))),
                Some(policy) => r.apply(ev, policy, rules, now).map(|fx| {
                    let due = r.next_due(policy);
                    vec![(r, fx, due)]
                }),
            },
        };
        Ok(applied)
    }

    /// Applies an `arrears.*` or `hold.*` event without a resource to every
    /// resource of the tenant it concerns (for arrears, those whose billing
    /// the product marks as affected); tenant holds also cover resources
    /// created later.
    fn apply_to_tenant(&mut self, ev: &Event, now: Timestamp, w: &mut WriteSet) -> Result<Applied, EngineError> {
        let config = self.config.clone();
        let rules = self.rules();
        if matches!(ev.body, EventBody::HoldPlaced { .. } | EventBody::HoldReleased { .. }) {
            let mut holds = self.store.tenant_holds(&ev.tenant)?;
            if let Err(rejection) = holds.apply(ev) {
                return Ok(Err(rejection));
            }
            w.tenants.push((ev.tenant.clone(), holds));
        }
        let mut changes = Vec::new();
        for id in self.store.tenant_resources(&ev.tenant)? {
            let Some(mut r) = self.store.resource(&id)? else { continue };
            let Some(policy) = config.products.get(&r.product) else {
                tracing::error!(resource = %r.id, product = %r.product, "product is not configured: tenant event skipped");
                continue;
            };
            if !r.concerned_by_tenant_event(ev, policy) {
                continue;
            }
            match r.apply(ev, policy, rules, now) {
                Ok(fx) => {
                    let due = r.next_due(policy);
                    changes.push((r, fx, due));
                }
                Err(rejection) => {
                    tracing::info!(resource = %id, error = %rejection, "tenant-wide event does not apply to this resource")
                }
            }
        }
        Ok(Ok(changes))
    }

    /// Runs every deadline due at `now`, repeating while transitions make
    /// more work due (an expiry whose buffer has also run out).
    fn tick(&mut self, now: Timestamp) -> Result<(), EngineError> {
        let allowed = self.rules().may_start;
        let starters = if allowed { self.judge_starts(now)? } else { Starters::default() };
        loop {
            let mut changed = false;
            for (due, id) in self.store.due(now, usize::MAX)? {
                let Some(mut r) = self.store.resource(&id)? else { continue };
                let Some(policy) = self.config.products.get(&r.product).cloned() else {
                    tracing::error!(resource = %r.id, product = %r.product, "product is not configured: deadline not run");
                    continue;
                };
                let before = r.clone();
                // Only the judged batch may start deleting; resources whose
                // deletion already started go on (purges at expiry are
                // gated by the daemon-wide switches alone).
                let may_start = allowed && (before.state.is_final() || starters.contains(&id));
                let mut fx = self.advance(&mut r, &policy, now, may_start);
                fx.extend(self.queue_notices(&mut r, &policy, now));
                if r.state == crate::domain::lifecycle::State::Deleting
                    && before.state != crate::domain::lifecycle::State::Deleting
                {
                    if starters.approved.contains(&id) {
                        // An operator approved this start: never counted.
                        r.guard_approved = true;
                    } else {
                        self.guard.started(now, 1);
                    }
                }
                let next = r.next_due(&policy);
                // Rewrite when the state moved, or when the due time changed
                // under it (a config change while the daemon was down).
                // The index keeps whole milliseconds: compare at that precision.
                let moved = next.map(|t| t.timestamp_millis()) != Some(due.timestamp_millis());
                if r != before || moved {
                    changed |= r != before;
                    let mut w = WriteSet::default();
                    self.effects(&mut w, now, &mut r, fx);
                    w.put_resource(r, next);
                    self.store.commit(w)?;
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Hands the resource's due notices to the notifier once durable (or,
    /// without a notifier or in dry run, records them as skipped). Returns
    /// the effects of skipped ones.
    fn queue_notices(
        &mut self,
        r: &mut Resource,
        policy: &crate::domain::policy::ProductPolicy,
        now: Timestamp,
    ) -> Vec<Effect> {
        let due: Vec<String> = r
            .notices_to_send(now)
            .into_iter()
            .map(|n| n.key.clone())
            .filter(|k| !self.notices_in_flight.contains(k))
            .collect();
        let mut fx = Vec::new();
        for key in due {
            match (&self.notifier, self.config.safety.dry_run) {
                (Some(_), false) => {
                    let Some(n) = r.notices.iter().find(|n| n.key == key) else { continue };
                    let payload = crate::notifier::payload(n, &r.tenant, &r.id, &policy.name);
                    self.notices_in_flight.insert(key.clone());
                    self.to_notify.push((r.id.clone(), key, payload));
                }
                (None, _) => fx.extend(r.notice_sent(&key, now, Some("no [notifier] configured"))),
                (_, true) => fx.extend(r.notice_sent(&key, now, Some("dry run"))),
            }
        }
        fx
    }

    /// Records a notifier's answer; never touches a deadline.
    fn notice_result(&mut self, id: &str, key: &str, outcome: Result<(), NoticeFailure>) -> Result<(), EngineError> {
        let Some(mut r) = self.store.resource(id)? else { return Ok(()) };
        let now = self.clock.now();
        let fx = match outcome {
            Ok(()) => r.notice_sent(key, now, None),
            Err(e) => {
                tracing::warn!(resource = %id, key, error = %e, "notice not sent; will retry");
                r.notice_failed(key, &e.to_string(), now)
            }
        };
        let due = self.due_of(&r);
        let mut w = WriteSet::default();
        self.effects(&mut w, now, &mut r, fx);
        w.put_resource(r, due);
        self.store.commit(w)?;
        Ok(())
    }

    /// When the resource is next due: by its policy, or, if its product has
    /// left the config, only for what needs no policy (copy retries,
    /// pending notices).
    fn due_of(&self, r: &Resource) -> Option<Timestamp> {
        due_in(&self.config, r)
    }

    /// Err(message) when `config` leaves out a product that a resource not
    /// yet settled belongs to: without its policy, events about the
    /// resource (a tenant-wide legal hold, a renewal) could not be applied
    /// to it, and it would be deleted later as if they had never come.
    fn check_products(&self, config: &Config) -> Result<Result<(), ProductsMissing>, EngineError> {
        Ok(self.scan_products(config, false)?.0)
    }

    /// One pass over the store: [`Engine::check_products`]'s answer and,
    /// with `migrate`, the records an older version wrote that need
    /// bringing up to date under `config` (their arrears grace end), and
    /// the deletion start times within the guard's long window.
    #[allow(clippy::type_complexity)]
    fn scan_products(
        &self,
        config: &Config,
        migrate: bool,
    ) -> Result<(Result<(), ProductsMissing>, Vec<Resource>, Vec<Timestamp>), EngineError> {
        let mut missing: BTreeMap<String, u64> = BTreeMap::new();
        let mut outdated = Vec::new();
        let mut started = Vec::new();
        let since = crate::domain::lifecycle::earlier(self.clock.now(), config.safety.guard.long_window.to_chrono());
        self.store.for_each_resource(&mut |mut r| {
            if !r.guard_approved {
                started.extend(r.deletion_started_at.filter(|t| *t > since));
            }
            match config.products.get(&r.product) {
                None if !r.is_settled() => *missing.entry(r.product).or_default() += 1,
                Some(p) if migrate && (r.fix_arrears_grace(p) | r.fix_restriction_limit(p)) => outdated.push(r),
                _ => {}
            }
        })?;
        if missing.is_empty() {
            return Ok((Ok(()), outdated, started));
        }
        Ok((Err(ProductsMissing { path: config.path.clone(), products: missing }), outdated, started))
    }

    /// Puts a new config in force: policies, stores, executors, notifier,
    /// safety settings and schedule. Running buffers keep the deadlines and
    /// policy versions they were set with (a reload never makes a pending
    /// deadline earlier on its own); then every due time is re-derived.
    fn reload(&mut self, config: Arc<Config>) -> Result<Result<ReloadReport, EngineError>, EngineError> {
        if let Err(why) = self.check_products(&config)? {
            let mut w = WriteSet::default();
            let data = json!({ "error": why.to_string() });
            self.record(&mut w, self.clock.now(), AuditKind::ConfigReloadFailed, None, None, data);
            self.store.commit(w)?;
            return Ok(Err(EngineError::ProductsInUse(why)));
        }
        let old = self.config.clone();
        let mut report = ReloadReport {
            products: config.products.iter().map(|(n, p)| (n.clone(), p.version.clone())).collect(),
            ..Default::default()
        };
        for (name, p) in &config.products {
            match old.products.get(name) {
                None => report.added.push(name.clone()),
                Some(o) if o.version != p.version => report.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        report.removed = old.products.keys().filter(|n| !config.products.contains_key(*n)).cloned().collect();
        self.executors = build_executors(&config);
        self.limits = call_limits(&config);
        self.notifier = config.notifier.as_ref().map(|n| Arc::new(Notifier::from_spec(n)));
        self.config = config.clone();
        let now = self.clock.now();
        let mut w = WriteSet::default();
        let data = json!({"path": config.path.display().to_string(), "products": report.products,
                          "changed": report.changed, "added": report.added, "removed": report.removed,
                          "dry_run": config.safety.dry_run});
        self.record(&mut w, now, AuditKind::ConfigReloaded, None, None, data);
        self.store.commit(w)?;
        tracing::info!(changed = ?report.changed, added = ?report.added, removed = ?report.removed, "config reloaded");
        self.sweep(SweepKind::Reconcile)?;
        Ok(Ok(report))
    }

    /// Runs one sweep; see [`SweepKind`]. Idempotent: running it twice
    /// changes nothing the first did not.
    fn sweep(&mut self, kind: SweepKind) -> Result<SweepReport, EngineError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let mut fixes = Vec::new();
        let config = self.config.clone();
        self.store.for_each_resource_due(&mut |r, due| {
            report.checked += 1;
            let want = match kind {
                SweepKind::Reconcile => due_in(&config, &r),
                SweepKind::BackupExpiry => {
                    let expired = r.copies.iter().any(|c| {
                        matches!(
                            c.state,
                            crate::domain::lifecycle::CopyState::Restricted
                                | crate::domain::lifecycle::CopyState::Restricting
                        ) && c.expires_at.is_some_and(|t| t <= now)
                    });
                    // Only where the state says the purge is due: a hold or
                    // `after_hold_release` may rightly keep it waiting.
                    if !expired {
                        return;
                    }
                    due_in(&config, &r)
                }
            };
            if want.map(|t| t.timestamp_millis()) != due.map(|t| t.timestamp_millis()) {
                fixes.push((r, want));
            }
        })?;
        report.fixed = fixes.len() as u64;
        for (r, want) in fixes {
            let mut w = WriteSet::default();
            w.put_resource(r, want);
            self.store.commit(w)?;
        }
        if report.fixed > 0 {
            let mut w = WriteSet::default();
            let data = json!({"sweep": kind.as_str(), "checked": report.checked, "fixed": report.fixed});
            self.record(&mut w, now, AuditKind::SweepRepaired, None, None, data);
            self.store.commit(w)?;
            tracing::warn!(
                sweep = kind.as_str(),
                checked = report.checked,
                fixed = report.fixed,
                "sweep repaired due times"
            );
        } else {
            tracing::debug!(sweep = kind.as_str(), checked = report.checked, "sweep found nothing to repair");
        }
        Ok(report)
    }

    /// The explicit operator action that applies a product's policy in
    /// force to its running buffers (issue 5, reload): a longer buffer moves
    /// the deletion later; a shorter one never brings it closer than
    /// `safety.min_notice` from now, nor earlier than it was.
    fn apply_policy(&mut self, product: &str) -> Result<Result<PolicyReport, EngineError>, EngineError> {
        let Some(policy) = self.config.products.get(product).cloned() else {
            return Ok(Err(EngineError::UnknownProduct(product.to_string())));
        };
        let now = self.clock.now();
        let min_notice = self.config.safety.min_notice.to_chrono();
        let mut report =
            PolicyReport { product: product.into(), policy_version: policy.version.clone(), ..Default::default() };
        let mut ids = Vec::new();
        self.store.for_each_resource(&mut |r| {
            if r.product == product {
                ids.push(r.id);
            }
        })?;
        for id in ids {
            let Some(mut r) = self.store.resource(&id)? else { continue };
            let before = r.deletion_date();
            let fx = r.reapply_policy(&policy, now, min_notice);
            if fx.is_empty() {
                report.unchanged += 1;
                continue;
            }
            if let (Some(from), Some(to)) = (before, r.deletion_date()) {
                if from != to {
                    report.rescheduled.push(Rescheduled {
                        resource: id.clone(),
                        from: fmt_rfc3339(from),
                        to: fmt_rfc3339(to),
                    });
                }
            }
            let due = r.next_due(&policy);
            let mut w = WriteSet::default();
            self.effects(&mut w, now, &mut r, fx);
            w.put_resource(r, due);
            self.store.commit(w)?;
        }
        let mut w = WriteSet::default();
        let data = json!({"product": product, "policy_version": policy.version, "min_notice": self.config.safety.min_notice.to_string(),
                          "rescheduled": report.rescheduled.len(), "unchanged": report.unchanged});
        self.record(&mut w, now, AuditKind::PolicyApplied, None, None, data);
        self.store.commit(w)?;
        Ok(Ok(report))
    }

    /// Queues an executor call to start once the state is durable, marking
    /// it in flight at once so a second pass does not queue it again.
    fn queue_call(&mut self, r: &Resource, store: String, copy: String, action: Action) {
        let key = (r.id.clone(), store, copy);
        if self.in_flight.insert(key.clone()) {
            self.to_dispatch.push((key, r.tenant.clone(), action));
        }
    }

    /// The mass-deletion guard trips: the batch is held whole and no
    /// deletion starts until an operator approves. Recorded once per trip,
    /// with the batch's size and digest (what the operator approves).
    fn trip_guard(&mut self, now: Timestamp, batch: HeldBatch) -> Result<(), EngineError> {
        let g = &self.config.safety.guard;
        let limits = match batch.window {
            crate::domain::guard::WindowKind::Short => g.short(),
            crate::domain::guard::WindowKind::Long => g.long(),
        };
        let data = crate::domain::guard::tripped_record(&batch, &limits, self.tracked);
        let state = GuardState { held: Some(batch.clone()) };
        let mut w = WriteSet { flags: vec![(Flag::GuardTripped, true)], guard: Some(state), ..Default::default() };
        self.record(&mut w, now, AuditKind::GuardTripped, None, None, data);
        self.store.commit(w)?;
        self.guard_tripped = true;
        tracing::error!(batch = batch.size(), digest = %batch.digest, window = ?batch.window,
            started_in_window = batch.started_in_window,
            "mass-deletion guard tripped: the batch is held whole; deletions stop until approved");
        self.held_batch = Some(batch);
        Ok(())
    }

    /// Calls the pure lifecycle and queues its dispatches (marking them in
    /// flight at once, so a second pass does not queue them again).
    fn advance(
        &mut self,
        r: &mut Resource,
        policy: &crate::domain::policy::ProductPolicy,
        now: Timestamp,
        may_start: bool,
    ) -> Vec<Effect> {
        let in_flight = &self.in_flight;
        let id = r.id.clone();
        let busy = |store: &str, copy: &str| in_flight.contains(&(id.clone(), store.to_string(), copy.to_string()));
        let rules = Rules { may_start, ..self.rules() };
        let sending = |key: &str| self.notices_in_flight.contains(key);
        let fx = r.advance(policy, now, rules, &busy, &sending);
        let mut rest = Vec::new();
        for e in fx {
            match e {
                Effect::Dispatch { store, copy, action } => self.queue_call(r, store, copy, action),
                other => rest.push(other),
            }
        }
        rest
    }

    fn copy_result(&mut self, id: &str, store: &str, copy: &str, outcome: CallOutcome) -> Result<(), EngineError> {
        let Some(mut r) = self.store.resource(id)? else { return Ok(()) };
        let now = self.clock.now();
        let fx = match &outcome {
            CallOutcome::Done => r.copy_done(store, copy, now),
            CallOutcome::Failed(e) => {
                let fx = r.copy_failed(store, copy, e, now, self.rules());
                if fx.iter().any(|f| matches!(f, Effect::Record { kind: AuditKind::CopyStuck, .. })) {
                    tracing::error!(resource = %id, store, copy, error = %e, "executor keeps failing: copy is stuck until an operator retries it");
                } else {
                    tracing::warn!(resource = %id, store, copy, error = %e, "executor failed; will retry");
                }
                fx
            }
            CallOutcome::NotRun => return Ok(()),
        };
        let mut w = WriteSet::default();
        self.effects(&mut w, now, &mut r, fx);
        // The outcome is recorded even if the product has left the config
        // meanwhile: the copy is gone (or must be retried) either way.
        let due = self.due_of(&r);
        w.put_resource(r, due);
        self.store.commit(w)?;
        Ok(())
    }

    /// Writes the effects' audit records, noting on each copy the sequence
    /// number that completed it, and issues the deletion certificate when the
    /// resource is purged.
    fn effects(&mut self, w: &mut WriteSet, now: Timestamp, r: &mut Resource, fx: Vec<Effect>) {
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if r.holds.is_empty() {
                held.remove(&r.id);
            } else {
                held.insert(r.id.clone());
            }
        }
        for e in fx {
            match e {
                Effect::Record { kind, data } => {
                    if kind == AuditKind::CopyRestrictionOverdue {
                        tracing::error!(resource = %r.id, store = %data["store"], copy = %data["copy"],
                            "a restricted backup is kept past its store's max_restricted: purge it or record why");
                    }
                    let (store, copy) =
                        (data["store"].as_str().map(String::from), data["copy"].as_str().map(String::from));
                    let (tenant, id) = (r.tenant.clone(), r.id.clone());
                    self.record(w, now, kind, Some(&tenant), Some(&id), data);
                    if matches!(kind, AuditKind::CopyDeleted | AuditKind::CopyPurged | AuditKind::CopyRestricted) {
                        if let Some(c) = r
                            .copies
                            .iter_mut()
                            .find(|c| Some(&c.store) == store.as_ref() && Some(&c.copy) == copy.as_ref())
                        {
                            c.done_seq = Some(self.head.seq);
                        }
                    }
                    if kind == AuditKind::ResourcePurged {
                        let cert = crate::certificate::Certificate::issue(r, &self.config, now, &self.head);
                        w.certificates.push((r.id.clone(), cert.to_json()));
                    }
                }
                Effect::Dispatch { store, copy, action } => self.queue_call(r, store, copy, action),
            }
        }
    }

    fn record(
        &mut self,
        w: &mut WriteSet,
        now: Timestamp,
        kind: AuditKind,
        tenant: Option<&str>,
        resource: Option<&str>,
        data: Value,
    ) {
        self.metrics.audit_record(kind, &data);
        let rec = AuditRecord::seal(self.head.seq + 1, now, kind.as_str(), tenant, resource, data, &self.head.hash);
        self.head = AuditHead { seq: rec.seq, hash: rec.hash.clone() };
        tracing::info!(seq = rec.seq, kind = kind.as_str(), tenant, resource, "audit");
        self.unwritten.push(rec.clone());
        w.audit.push(rec);
    }

    /// One fsync of the database, then one of the audit file, for everything
    /// applied since the last call.
    async fn make_durable(&mut self) -> Result<(), EngineError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| EngineError::Audit(format!("flush task failed: {e}")))??;
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.unwritten);
        let last = records.last().map(|r| r.seq);
        let audit = self.audit.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = audit.lock().unwrap_or_else(|e| e.into_inner());
            log.append(&records)
        })
        .await
        .map_err(|e| EngineError::Audit(format!("audit task failed: {e}")))?
        .map_err(|e| EngineError::Audit(e.to_string()))?;
        // Lazily trim the outbox; if this is lost in a crash the records are
        // skipped on start because the file already holds them.
        self.store.commit(WriteSet { outbox_done_through: last, ..Default::default() })?;
        Ok(())
    }

    /// Starts the executor calls whose intent is now durable.
    fn dispatch(&mut self) {
        if self.draining {
            // Stopping: the intents are stored; the next start calls them.
            for (key, _, _) in self.to_dispatch.drain(..) {
                self.in_flight.remove(&key);
            }
            for (_, key, _) in self.to_notify.drain(..) {
                self.notices_in_flight.remove(&key);
            }
            return;
        }
        for (resource, key, payload) in self.to_notify.drain(..) {
            let Some(notifier) = self.notifier.clone() else { continue };
            let (tx, permits) = (self.tx.clone(), self.notice_permits.clone());
            let limit =
                self.config.notifier.as_ref().map_or(Duration::from_secs(30), |n| n.limit()) + Duration::from_secs(5);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = match tokio::time::timeout(limit, notifier.send(&key, &payload)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(NoticeFailure::Notifier(e)),
                    Err(_) => Err(NoticeFailure::NoAnswer { secs: limit.as_secs() }),
                };
                let _ = tx.send(Command::NoticeResult { resource, key, outcome }).await;
            });
        }
        for ((resource, store, copy), tenant, action) in self.to_dispatch.drain(..) {
            let tx = self.tx.clone();
            let size = self.config.daemon.executor_concurrency;
            let permits = self.permits.entry(store.clone()).or_insert_with(|| Arc::new(Semaphore::new(size))).clone();
            let Some(executor) = self.executors.get(&store).cloned() else {
                let outcome = CallOutcome::Failed(format!("store {store:?} is not configured"));
                tokio::spawn(async move {
                    let _ = tx.send(Command::CopyResult { resource, store, copy, outcome }).await;
                });
                continue;
            };
            let limit = self.limits.get(&store).copied().unwrap_or(FS_CALL_LIMIT);
            let gate = self.gate.clone();
            let held = self.held.clone();
            let metrics = self.metrics.clone();
            let target = Target { tenant, resource: resource.clone(), store: store.clone(), copy: copy.clone() };
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                // A pause that came while this call waited for a permit
                // stops it here.
                let is_held = held.lock().unwrap_or_else(|e| e.into_inner()).contains(&resource);
                if !gate.load(Ordering::SeqCst) || is_held {
                    let _ = tx.send(Command::CopyResult { resource, store, copy, outcome: CallOutcome::NotRun }).await;
                    return;
                }
                let started = std::time::Instant::now();
                let outcome = match tokio::time::timeout(limit, executor.run(action, &target)).await {
                    Ok(Ok(())) => CallOutcome::Done,
                    Ok(Err(e)) => CallOutcome::Failed(e.to_string()),
                    Err(_) => CallOutcome::Failed(format!("no answer within {}s", limit.as_secs())),
                };
                tracing::info!(resource = %target.resource, store = %target.store, copy = %target.copy,
                    action = action.as_str(), ok = matches!(outcome, CallOutcome::Done),
                    elapsed_ms = started.elapsed().as_millis() as u64, "executor call finished");
                metrics.executor_call(
                    &target.store,
                    action.as_str(),
                    matches!(outcome, CallOutcome::Done),
                    started.elapsed(),
                );
                let _ = tx.send(Command::CopyResult { resource, store, copy, outcome }).await;
            });
        }
    }

    /// How long to sleep: until the next deadline, at most [`MAX_SLEEP`].
    fn sleep_duration(&self) -> Result<Duration, EngineError> {
        let now = self.clock.now();
        Ok(match self.store.next_due_after(now)? {
            Some(t) => (t - now).to_std().unwrap_or_default().min(MAX_SLEEP),
            None => MAX_SLEEP,
        })
    }
}

/// The resources that may start deleting in one tick: judged by the guard,
/// or released by an operator's approval.
#[derive(Default)]
struct Starters {
    judged: HashSet<String>,
    approved: HashSet<String>,
}

impl Starters {
    fn contains(&self, id: &str) -> bool {
        self.judged.contains(id) || self.approved.contains(id)
    }
}

/// See [`Engine::due_of`].
fn due_in(config: &Config, r: &Resource) -> Option<Timestamp> {
    match config.products.get(&r.product) {
        Some(p) => r.next_due(p),
        None => r.retry_due(),
    }
}

/// One executor per configured store.
fn build_executors(config: &Config) -> BTreeMap<String, Arc<Executor>> {
    config.stores.iter().map(|(name, s)| (name.clone(), Arc::new(Executor::from_spec(&s.executor)))).collect()
}

/// The hard time limit of one call, per store.
fn call_limits(config: &Config) -> BTreeMap<String, Duration> {
    config
        .stores
        .iter()
        .map(|(name, s)| {
            let limit = match &s.executor {
                crate::executor::ExecutorSpec::Command { timeout, .. }
                | crate::executor::ExecutorSpec::Http(crate::outbound::HttpSpec { timeout, .. }) => {
                    timeout.0 + Duration::from_secs(60)
                }
                _ => FS_CALL_LIMIT,
            };
            (name.clone(), limit)
        })
        .collect()
}
