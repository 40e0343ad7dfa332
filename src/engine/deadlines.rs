//! Time-driven work: every deadline due at `now` is run through the pure
//! lifecycle (buffers ending, copies retried, notices falling due), and the
//! loop learns how long it may sleep.

use super::safety::Starters;
use super::{ClockOp, Engine, EngineError, MAX_SLEEP};
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource, Rules, State};
use crate::store::WriteSet;
use crate::time::{fmt_rfc3339, Timestamp};
use std::time::Duration;
use tokio::sync::oneshot;

/// Deadline index entries the tick reads, runs and writes back at a time.
pub(super) const TICK_SLICE: usize = 1000;

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
        self.tick_through(now, now)
    }

    /// [`Engine::tick`], looking at every resource indexed up to `horizon`
    /// (later than `now` at start: the leases of calls the previous run left
    /// in flight). What the lifecycle does is decided at `now` alone.
    ///
    /// The index is read in slices of [`TICK_SLICE`] entries, each slice's
    /// changes written to the store in one commit before the next is read
    /// (issue 11: a burst of 100,000 due at once is never read whole, nor
    /// written one resource at a time).
    pub(super) fn tick_through(&mut self, now: Timestamp, horizon: Timestamp) -> Result<(), EngineError> {
        // The index is read from the store: the group's writes first.
        self.settle()?;
        let allowed = self.rules().may_start;
        let starters = if allowed { self.judge_starts(now)? } else { Starters::default() };
        loop {
            let mut changed = false;
            let mut slice = self.store.due(horizon, TICK_SLICE)?;
            while let Some((last_due, last_id)) = slice.last().cloned() {
                for (due, id) in slice {
                    changed |= self.run_deadline(&id, due, now, allowed, &starters)?;
                }
                self.settle()?;
                slice = self.store.due_after((last_due, &last_id), horizon, TICK_SLICE)?;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Runs one resource's deadline (indexed at `due`); true when its state
    /// moved. `allowed`: deletions may start at all; `starters`: the ones
    /// that may start now.
    fn run_deadline(
        &mut self,
        id: &str,
        due: Timestamp,
        now: Timestamp,
        allowed: bool,
        starters: &Starters,
    ) -> Result<bool, EngineError> {
        let Some(mut r) = self.read_resource(id)? else { return Ok(false) };
        let Some(policy) = self.config.products.get(&r.product).cloned() else {
            tracing::error!(resource = %r.id, product = %r.product, "product is not configured: deadline not run");
            return Ok(false);
        };
        let before = r.clone();
        // Only the judged batch may start deleting; resources whose
        // deletion already started go on (purges at expiry are
        // gated by the daemon-wide switches alone).
        let may_start = allowed && (before.state.is_final() || starters.contains(id));
        let mut fx = self.advance(&mut r, &policy, now, may_start);
        fx.extend(self.queue_notices(&mut r, &policy, now));
        if r.state == State::Deleting && before.state != State::Deleting {
            if starters.approved.contains(id) {
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
        let changed = r != before;
        if changed || moved {
            let mut w = WriteSet::default();
            self.effects(&mut w, now, &mut r, fx);
            w.put_resource(r, next);
            self.commit(w)?;
        }
        Ok(changed)
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

    /// Moves the manual clock (staging and tests) and keeps the new reading
    /// in the store; the caller is answered once the due work has run.
    pub(super) fn move_clock(
        &mut self,
        op: ClockOp,
        reply: oneshot::Sender<Result<Timestamp, EngineError>>,
    ) -> Result<(), EngineError> {
        let Some(manual) = self.clock.as_manual() else {
            let _ = reply.send(Err(EngineError::ClockNotManual));
            return Ok(());
        };
        let now = match op {
            ClockOp::Advance(d) => manual.advance(d.to_chrono()),
            ClockOp::Set(t) => Some(manual.set(t)),
        };
        let Some(now) = now else {
            let _ = reply.send(Err(EngineError::ClockRange));
            return Ok(());
        };
        self.commit(WriteSet { clock: Some(now), ..Default::default() })?;
        tracing::info!(now = %fmt_rfc3339(now), "manual clock moved");
        self.clock_waiters.push(reply);
        Ok(())
    }

    /// Answers the clock movers once no call is in flight: the work their
    /// move made due has run, or waits on a retry.
    pub(super) fn answer_clock_waiters(&mut self) {
        if self.calls.is_empty() && self.notices.in_flight.is_empty() {
            let now = self.clock.now();
            for w in self.clock_waiters.drain(..) {
                let _ = w.send(Ok(now));
            }
        }
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
