//! What callers see of the engine: [`EngineHandle`], the [`Command`]s it
//! sends down the one channel, and the answers they get back.

use super::{CallOutcome, EngineError, NoticeFailure};
use crate::config::Config;
use crate::domain::event::Event;
use crate::duration::Dur;
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
    /// An operator asks to retry a subject's stuck personal-store calls.
    RetrySubject {
        /// The subject.
        subject: crate::store::SubjectKey,
        /// Only this store's calls, if given.
        store: Option<String>,
        /// Receives how many calls are retried.
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
        /// The resource or subject.
        owner: super::dispatch::Owner,
        /// The store.
        store: String,
        /// The copy (for a subject: the class of personal data).
        copy: String,
        /// What was asked.
        action: crate::executor::Action,
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
    pub(super) tx: mpsc::Sender<Command>,
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

    /// Retries a subject's stuck personal-store calls (all, or one store's).
    pub async fn retry_subject(
        &self,
        subject: crate::store::SubjectKey,
        store: Option<String>,
    ) -> Result<usize, EngineError> {
        self.call(|reply| Command::RetrySubject { subject, store, reply }).await
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
