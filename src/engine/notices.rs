//! Notices to the tenant (domain-rules §1.3): stored with their resource
//! before the notifier is called and marked sent only after, so each is
//! sent at least once (the notifier's receiver dedupes by key). A notice
//! never moves a deadline: one that cannot be sent neither delays nor
//! hastens a deletion.

use super::{Command, Engine, EngineError, NoticeFailure};
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource};
use crate::domain::policy::ProductPolicy;
use crate::notifier::Notifier;
use crate::store::WriteSet;
use crate::time::Timestamp;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// The notifier calls: queued while their intent is being made durable,
/// started after the flush, one at a time per notice.
pub(super) struct Notices {
    /// Where notices go; None: they are recorded as skipped.
    notifier: Option<Arc<Notifier>>,
    /// How long one call may take: the notifier's own limit plus a margin.
    limit: Duration,
    /// Notices being sent, by key.
    pub(super) in_flight: HashSet<String>,
    /// Notices to send once their intent is durable: resource, key, payload.
    queued: Vec<(String, String, Value)>,
    /// Notifier call permits (`daemon.executor_concurrency`).
    permits: Arc<Semaphore>,
}

impl Notices {
    /// No notice yet, the notifier as `config` has it.
    pub(super) fn new(config: &Config) -> Notices {
        let mut notices = Notices {
            notifier: None,
            limit: Duration::ZERO,
            in_flight: HashSet::new(),
            queued: Vec::new(),
            permits: Arc::new(Semaphore::new(config.daemon.executor_concurrency)),
        };
        notices.configure(config);
        notices
    }

    /// Takes a reloaded config's notifier for the notices started from now on.
    pub(super) fn configure(&mut self, config: &Config) {
        self.notifier = config.notifier.as_ref().map(|n| Arc::new(Notifier::from_spec(n)));
        self.limit = config.notifier.as_ref().map_or(Duration::from_secs(30), |n| n.limit()) + Duration::from_secs(5);
    }

    /// Whether this notice is being sent.
    pub(super) fn sending(&self, key: &str) -> bool {
        self.in_flight.contains(key)
    }

    /// Stopping: the queued notices are not sent. They are stored as
    /// pending, so the next start sends them.
    pub(super) fn park(&mut self) {
        for (_, key, _) in self.queued.drain(..) {
            self.in_flight.remove(&key);
        }
    }

    /// Sends the queued notices, each reporting back on `tx` as a
    /// [`Command::NoticeResult`].
    pub(super) fn start(&mut self, tx: &mpsc::Sender<Command>) {
        for (resource, key, payload) in self.queued.drain(..) {
            let Some(notifier) = self.notifier.clone() else { continue };
            let (tx, permits) = (tx.clone(), self.permits.clone());
            let limit = self.limit;
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
    }
}

impl Engine {
    /// Hands the resource's due notices to the notifier once durable (or,
    /// without a notifier or in dry run, records them as skipped). Returns
    /// the effects of skipped ones.
    pub(super) fn queue_notices(&mut self, r: &mut Resource, policy: &ProductPolicy, now: Timestamp) -> Vec<Effect> {
        let due: Vec<String> =
            r.notices_to_send(now).into_iter().map(|n| n.key.clone()).filter(|k| !self.notices.sending(k)).collect();
        let mut fx = Vec::new();
        for key in due {
            match (&self.notices.notifier, self.config.safety.dry_run) {
                (Some(_), false) => {
                    let Some(n) = r.notices.iter().find(|n| n.key == key) else { continue };
                    let payload = crate::notifier::payload(n, &r.tenant, &r.id, &policy.name);
                    self.notices.in_flight.insert(key.clone());
                    self.notices.queued.push((r.id.clone(), key, payload));
                }
                (None, _) => fx.extend(r.notice_sent(&key, now, Some("no [notifier] configured"))),
                (_, true) => fx.extend(r.notice_sent(&key, now, Some("dry run"))),
            }
        }
        fx
    }

    /// Records a notifier's answer; never touches a deadline.
    pub(super) fn notice_result(
        &mut self,
        id: &str,
        key: &str,
        outcome: Result<(), NoticeFailure>,
    ) -> Result<(), EngineError> {
        let Some(mut r) = self.read_resource(id)? else { return Ok(()) };
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
        self.commit(w)?;
        Ok(())
    }
}
