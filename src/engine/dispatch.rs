//! Executor and notifier calls: queued while their intent is being made
//! durable, started after the flush, and their outcome recorded when it
//! comes back as a command (engineering-notes habit 1: persist intent,
//! act, record the outcome).

use super::{Command, Engine, EngineError, NoticeFailure};
use crate::audit::AuditKind;
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource};
use crate::executor::{Action, Executor, Target};
use crate::store::WriteSet;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Hard limit on one `fs` executor call (a hung mount must not hold a
/// permit forever); command calls get their own timeout plus a minute.
const FS_CALL_LIMIT: Duration = Duration::from_secs(600);

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

pub(super) type CopyKey = (String, String, String);

/// One executor per configured store.
pub(super) fn build_executors(config: &Config) -> BTreeMap<String, Arc<Executor>> {
    config.stores.iter().map(|(name, s)| (name.clone(), Arc::new(Executor::from_spec(&s.executor)))).collect()
}

/// The hard time limit of one call, per store.
pub(super) fn call_limits(config: &Config) -> BTreeMap<String, Duration> {
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

impl Engine {
    /// Starts the executor calls whose intent is now durable.
    pub(super) fn dispatch(&mut self) {
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

    /// Queues an executor call to start once the state is durable, marking
    /// it in flight at once so a second pass does not queue it again.
    pub(super) fn queue_call(&mut self, r: &Resource, store: String, copy: String, action: Action) {
        let key = (r.id.clone(), store, copy);
        if self.in_flight.insert(key.clone()) {
            self.to_dispatch.push((key, r.tenant.clone(), action));
        }
    }

    pub(super) fn copy_result(
        &mut self,
        id: &str,
        store: &str,
        copy: &str,
        outcome: CallOutcome,
    ) -> Result<(), EngineError> {
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

    /// Records a notifier's answer; never touches a deadline.
    pub(super) fn notice_result(
        &mut self,
        id: &str,
        key: &str,
        outcome: Result<(), NoticeFailure>,
    ) -> Result<(), EngineError> {
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
}
