//! Executor calls: queued while their intent is being made durable,
//! started after the flush, and their outcome recorded when it comes back
//! as a command (engineering-notes habit 1: persist intent, act, record
//! the outcome). Executors are idempotent, so a call whose outcome was lost
//! (a crash, a drain deadline) is simply made again from the stored intent.

use super::{Command, Engine, EngineError};
use crate::audit::AuditKind;
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource};
use crate::executor::{Action, Executor, Item, Target};
use crate::store::WriteSet;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Hard limit on one `fs` executor call (a hung mount must not hold a
/// place forever); command calls get their own timeout plus a minute.
const FS_CALL_LIMIT: Duration = Duration::from_secs(600);

/// At start, entries indexed up to this far ahead are looked at at once
/// (at least: [`Calls::lease`] may be longer), so calls left in flight by
/// the previous run resume at once even if its stores' limits were longer.
pub(super) const RESUME_HORIZON: Duration = Duration::from_secs(6 * 3600);

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

/// Whose data an executor call is about: a resource's copy of business
/// data, or a subject's personal data (issue 12).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A resource, by id.
    Resource(String),
    /// A subject.
    Subject(crate::store::SubjectKey),
}

/// An executor call: (owner, store, copy), the copy being a class of
/// personal data for a subject.
pub(super) type CopyKey = (Owner, String, String);

/// The executor calls: queued while their intent is being made durable,
/// started after the flush, one at a time per copy, each store with its
/// own limit of running calls and time limit.
pub(super) struct Calls {
    /// One executor per configured store.
    executors: BTreeMap<String, Arc<Executor>>,
    /// Hard time limit per store's executor call.
    limits: BTreeMap<String, Duration>,
    /// Per store, the calls whose intent is durable and the tasks running
    /// them: at most `daemon.executor_concurrency` each, so a store whose
    /// calls hang cannot hold up deletions in the others.
    lanes: BTreeMap<String, Arc<Lane>>,
    /// Calls queued or running: a copy is never called twice at once.
    in_flight: HashSet<CopyKey>,
    /// How many of them each resource or subject has, so whether one is
    /// busy is one lookup (see [`Calls::lease`]).
    busy_owners: HashMap<Owner, usize>,
    /// Calls queued in this step, whose intent is being made durable, with
    /// the tenant; [`Calls::start`] hands them to their store's lane.
    queued: Vec<Call>,
    /// Whether deletions may run, shared with queued executor calls so a
    /// pause reaches calls already waiting for their turn.
    gate: Arc<AtomicBool>,
    /// Resources and subjects under a hold, shared with queued executor
    /// calls so a hold placed while a call waits for its turn stops it.
    held: Arc<Mutex<HashSet<Owner>>>,
}

impl Calls {
    /// No call yet, the gate shut until the first step opens it.
    pub(super) fn new(config: &Config) -> Calls {
        Calls {
            executors: build_executors(config),
            limits: call_limits(config),
            lanes: BTreeMap::new(),
            in_flight: HashSet::new(),
            busy_owners: HashMap::new(),
            queued: Vec::new(),
            gate: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Takes a reloaded config's stores: calls started from now on use
    /// their executors and limits.
    pub(super) fn configure(&mut self, config: &Config) {
        self.executors = build_executors(config);
        self.limits = call_limits(config);
        for (store, lane) in &self.lanes {
            let mut st = lane.lock();
            st.executor = self.executors.get(store).cloned();
            st.limit = self.limits.get(store).copied().unwrap_or(FS_CALL_LIMIT);
        }
    }

    /// Opens or shuts the gate that calls check as they start.
    pub(super) fn set_gate(&self, open: bool) {
        self.gate.store(open, Ordering::SeqCst);
    }

    /// Whether this copy's call is queued or running.
    pub(super) fn busy(&self, resource: &str, store: &str, copy: &str) -> bool {
        self.in_flight.contains(&(Owner::Resource(resource.to_string()), store.to_string(), copy.to_string()))
    }

    /// Whether any call of this resource is queued or running.
    pub(super) fn resource_busy(&self, resource: &str) -> bool {
        self.busy_owners.contains_key(&Owner::Resource(resource.to_string()))
    }

    /// Whether any call of this subject is queued or running.
    pub(super) fn subject_busy(&self, key: &crate::store::SubjectKey) -> bool {
        self.busy_owners.contains_key(&Owner::Subject(key.clone()))
    }

    /// Calls queued or running.
    pub(super) fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether no call is queued or running.
    pub(super) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// How far ahead a resource with a call queued or running is indexed:
    /// the longest a call may take (the stores' hard limits). Its copies
    /// are being deleted, so the deadline index need not offer it to every
    /// step meanwhile (issue 11: re-reading every resource in flight at
    /// every step made a burst of N deletions cost N² reads); the call's
    /// outcome puts it back at its lifecycle due time. Should the daemon
    /// die first, the next start looks this far ahead (and at least
    /// [`RESUME_HORIZON`]) and resumes it at once.
    pub(super) fn lease(&self) -> Duration {
        self.limits.values().copied().max().unwrap_or(FS_CALL_LIMIT).max(FS_CALL_LIMIT)
    }

    /// The copy is no longer in flight (its call reported back or was never
    /// started).
    pub(super) fn finish(&mut self, key: &CopyKey) {
        if self.in_flight.remove(key) {
            if let Some(n) = self.busy_owners.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.busy_owners.remove(&key.0);
                }
            }
        }
    }

    /// Notes whether `r` is under a hold, for calls waiting for their turn.
    pub(super) fn note_holds(&self, r: &Resource) {
        self.note_held(Owner::Resource(r.id.clone()), !r.holds.is_empty());
    }

    /// Notes whether a hold covers a subject's tenant: its erasures wait.
    pub(super) fn note_subject_holds(&self, key: &crate::store::SubjectKey, held: bool) {
        self.note_held(Owner::Subject(key.clone()), held);
    }

    fn note_held(&self, owner: Owner, is_held: bool) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if is_held {
            held.insert(owner);
        } else {
            held.remove(&owner);
        }
    }

    /// Queues an executor call to start once the state is durable, marking
    /// it in flight at once so a second pass does not queue it again.
    pub(super) fn queue(&mut self, r: &Resource, store: String, copy: String, action: Action) {
        self.enqueue((Owner::Resource(r.id.clone()), store, copy), r.tenant.clone(), action);
    }

    /// Queues a personal store's call for one class of a subject's data,
    /// as [`Calls::queue`] does a copy's.
    pub(super) fn queue_personal(
        &mut self,
        key: &crate::store::SubjectKey,
        class: String,
        store: String,
        action: crate::domain::privacy::PersonalAction,
    ) {
        let tenant = key.tenant.clone();
        self.enqueue((Owner::Subject(key.clone()), store, class), tenant, super::privacy::executor_action(action));
    }

    fn enqueue(&mut self, key: CopyKey, tenant: String, action: Action) {
        if self.in_flight.insert(key.clone()) {
            *self.busy_owners.entry(key.0.clone()).or_default() += 1;
            self.queued.push(Call { key, tenant, action });
        }
    }

    /// Stopping: the queued calls are not started. Their intents are
    /// stored, so the next start calls them.
    pub(super) fn park(&mut self) {
        let mut parked = std::mem::take(&mut self.queued);
        for lane in self.lanes.values() {
            parked.extend(lane.lock().waiting.drain(..));
        }
        for call in parked {
            self.finish(&call.key);
        }
    }

    /// Hands the calls queued in this step, now durable, to their stores'
    /// lanes, starting a lane task where the store runs fewer than
    /// `concurrency`. A lane task runs its store's calls one after another
    /// as long as any wait, each reporting back on `tx` as a
    /// [`Command::CopyResult`]: a store's calls follow each other at once,
    /// not at the pace of the engine's steps, and only the running ones have
    /// a task (issue 11: 100,000 deletions due at once spawned 100,000 tasks
    /// waiting on permits).
    pub(super) fn start(
        &mut self,
        tx: &mpsc::Sender<Command>,
        concurrency: usize,
        metrics: &Arc<crate::metrics::Metrics>,
    ) {
        for call in self.queued.drain(..) {
            let store = call.key.1.clone();
            let lane = self
                .lanes
                .entry(store.clone())
                .or_insert_with(|| {
                    Arc::new(Lane {
                        state: Mutex::new(LaneState {
                            waiting: VecDeque::new(),
                            workers: 0,
                            executor: self.executors.get(&store).cloned(),
                            limit: self.limits.get(&store).copied().unwrap_or(FS_CALL_LIMIT),
                        }),
                    })
                })
                .clone();
            let spawn = {
                let mut st = lane.lock();
                st.waiting.push_back(call);
                let spawn = st.workers < concurrency.max(1);
                if spawn {
                    st.workers += 1;
                }
                spawn
            };
            if spawn {
                let run = LaneTask {
                    lane,
                    tx: tx.clone(),
                    gate: self.gate.clone(),
                    held: self.held.clone(),
                    metrics: metrics.clone(),
                };
                tokio::spawn(run.run());
            }
        }
    }
}

/// An executor call to make: the copy, its tenant, what to do.
pub(super) struct Call {
    key: CopyKey,
    tenant: String,
    action: Action,
}

/// One store's calls whose intent is durable, waiting their turn, and how
/// many tasks run them.
pub(super) struct Lane {
    state: Mutex<LaneState>,
}

struct LaneState {
    /// Oldest first.
    waiting: VecDeque<Call>,
    /// Lane tasks running (at most `daemon.executor_concurrency`).
    workers: usize,
    /// The store's executor (None: the store left the config).
    executor: Option<Arc<Executor>>,
    /// The hard time limit of one call.
    limit: Duration,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A task that makes a lane's calls while any wait.
struct LaneTask {
    lane: Arc<Lane>,
    tx: mpsc::Sender<Command>,
    gate: Arc<AtomicBool>,
    held: Arc<Mutex<HashSet<Owner>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl LaneTask {
    async fn run(self) {
        loop {
            // Taking the next call and leaving when none waits happen under
            // the lane's lock, as does `start`'s check of `workers`: a call
            // handed over as the last task leaves finds a task.
            let (call, executor, limit) = {
                let mut st = self.lane.lock();
                match st.waiting.pop_front() {
                    Some(call) => (call, st.executor.clone(), st.limit),
                    None => {
                        st.workers -= 1;
                        return;
                    }
                }
            };
            let Call { key: (owner, store, copy), tenant, action } = call;
            // A pause or a hold that came while this call waited for its
            // turn stops it here (for a subject, only an erasure: a
            // restriction destroys nothing).
            let is_held = self.held.lock().unwrap_or_else(|e| e.into_inner()).contains(&owner)
                && (matches!(owner, Owner::Resource(_)) || matches!(action, Action::Delete | Action::Anonymize));
            let outcome = match executor {
                None => CallOutcome::Failed(format!("store {store:?} is not configured")),
                Some(_) if !self.gate.load(Ordering::SeqCst) || is_held => CallOutcome::NotRun,
                Some(executor) => {
                    let item = match &owner {
                        Owner::Resource(resource) => Item::Copy { resource: resource.clone(), copy: copy.clone() },
                        Owner::Subject(key) => Item::Personal { subject: key.subject.clone(), class: copy.clone() },
                    };
                    let target = Target { tenant, store: store.clone(), item };
                    call_executor(&executor, action, &target, limit, &self.metrics).await
                }
            };
            let _ = self.tx.send(Command::CopyResult { owner, store, copy, action, outcome }).await;
        }
    }
}

/// One executor call, cut off at `limit`, logged and counted.
async fn call_executor(
    executor: &Executor,
    action: Action,
    target: &Target,
    limit: Duration,
    metrics: &crate::metrics::Metrics,
) -> CallOutcome {
    let started = std::time::Instant::now();
    let outcome = match tokio::time::timeout(limit, executor.run(action, target)).await {
        Ok(Ok(())) => CallOutcome::Done,
        Ok(Err(e)) => CallOutcome::Failed(e.to_string()),
        Err(_) => CallOutcome::Failed(format!("no answer within {}s", limit.as_secs())),
    };
    let (ok, elapsed_ms) = (matches!(outcome, CallOutcome::Done), started.elapsed().as_millis() as u64);
    match &target.item {
        Item::Copy { resource, copy } => tracing::info!(resource = %resource, store = %target.store, copy = %copy,
            action = action.as_str(), ok, elapsed_ms, "executor call finished"),
        Item::Personal { subject, class } => tracing::info!(tenant = %target.tenant, subject = %subject,
            store = %target.store, class = %class, action = action.as_str(), ok, elapsed_ms,
            "executor call finished"),
    }
    metrics.executor_call(&target.store, action.as_str(), matches!(outcome, CallOutcome::Done), started.elapsed());
    outcome
}

/// One executor per configured store.
pub(super) fn build_executors(config: &Config) -> BTreeMap<String, Arc<Executor>> {
    config.executors.iter().map(|(name, spec)| (name.clone(), Arc::new(Executor::from_spec(spec)))).collect()
}

/// The hard time limit of one call, per store.
pub(super) fn call_limits(config: &Config) -> BTreeMap<String, Duration> {
    config
        .executors
        .iter()
        .map(|(name, spec)| {
            let limit = match spec {
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

impl Engine {
    /// Starts the executor and notifier calls whose intent is now durable
    /// (or, when stopping, leaves them stored for the next start).
    pub(super) fn dispatch(&mut self) {
        if self.draining {
            self.calls.park();
            self.notices.park();
            return;
        }
        self.notices.start(&self.tx);
        self.calls.start(&self.tx, self.config.daemon.executor_concurrency, &self.metrics);
    }

    /// An operator retries a resource's stuck copies (all, or one store's);
    /// returns how many were stuck.
    pub(super) fn retry(&mut self, resource: &str, store: Option<&str>) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let mut n = 0;
        if let Some(mut r) = self.read_resource(resource)? {
            n = r.copies.iter().filter(|c| c.stuck && store.is_none_or(|s| s == c.store)).count();
            let fx = r.retry_stuck(store, now);
            if !fx.is_empty() {
                let mut w = WriteSet::default();
                self.effects(&mut w, now, &mut r, fx);
                let due = self.due_of(&r);
                w.put_resource(r, due);
                self.commit(w)?;
            }
        }
        Ok(n)
    }

    /// Records an executor's answer: the copy is gone, or the call is
    /// retried later (stuck after `daemon.max_attempts`).
    pub(super) fn copy_result(
        &mut self,
        id: &str,
        store: &str,
        copy: &str,
        outcome: CallOutcome,
    ) -> Result<(), EngineError> {
        let Some(mut r) = self.read_resource(id)? else { return Ok(()) };
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
            CallOutcome::NotRun => {
                // Paused or held while it waited for its turn: nothing
                // changed, but its index entry is the lease of a call that
                // will not report again: put it back at its due time.
                if !self.calls.resource_busy(id) {
                    let due = self.due_of(&r);
                    let mut w = WriteSet::default();
                    w.put_resource(r, due);
                    self.commit(w)?;
                }
                return Ok(());
            }
        };
        let mut w = WriteSet::default();
        self.effects(&mut w, now, &mut r, fx);
        // The outcome is recorded even if the product has left the config
        // meanwhile: the copy is gone (or must be retried) either way.
        let due = self.due_of(&r);
        w.put_resource(r, due);
        self.commit(w)?;
        Ok(())
    }
}
