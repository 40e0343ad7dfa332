//! Time-driven work: every deadline due at `now` is run through the pure
//! lifecycle (buffers ending, copies retried, notices falling due), and the
//! loop learns how long it may sleep.

use super::safety::Starters;
use super::{Engine, EngineError, MAX_SLEEP};
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource, Rules};
use crate::store::WriteSet;
use crate::time::Timestamp;
use std::time::Duration;

/// See [`Engine::due_of`].
pub(super) fn due_in(config: &Config, r: &Resource) -> Option<Timestamp> {
    match config.products.get(&r.product) {
        Some(p) => r.next_due(p),
        None => r.retry_due(),
    }
}

impl Engine {
    /// Runs every deadline due at `now`, repeating while transitions make
    /// more work due (an expiry whose buffer has also run out).
    pub(super) fn tick(&mut self, now: Timestamp) -> Result<(), EngineError> {
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
                        self.safety.guard.started(now, 1);
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

    /// Calls the pure lifecycle and queues its dispatches (marking them in
    /// flight at once, so a second pass does not queue them again).
    fn advance(
        &mut self,
        r: &mut Resource,
        policy: &crate::domain::policy::ProductPolicy,
        now: Timestamp,
        may_start: bool,
    ) -> Vec<Effect> {
        let id = r.id.clone();
        let busy = |store: &str, copy: &str| self.calls.busy(&id, store, copy);
        let rules = Rules { may_start, ..self.rules() };
        let sending = |key: &str| self.notices.sending(key);
        let fx = r.advance(policy, now, rules, &busy, &sending);
        let mut rest = Vec::new();
        for e in fx {
            match e {
                Effect::Dispatch { store, copy, action } => self.calls.queue(r, store, copy, action),
                other => rest.push(other),
            }
        }
        rest
    }

    /// When the resource is next due: by its policy, or, if its product has
    /// left the config, only for what needs no policy (copy retries,
    /// pending notices).
    pub(super) fn due_of(&self, r: &Resource) -> Option<Timestamp> {
        due_in(&self.config, r)
    }

    /// How long to sleep: until the next deadline, at most [`MAX_SLEEP`].
    pub(super) fn sleep_duration(&self) -> Result<Duration, EngineError> {
        let now = self.clock.now();
        Ok(match self.store.next_due_after(now)? {
            Some(t) => (t - now).to_std().unwrap_or_default().min(MAX_SLEEP),
            None => MAX_SLEEP,
        })
    }
}
