//! Time-driven work: every deadline due at `now` is run through the pure
//! lifecycle (buffers ending, copies retried, notices falling due), and the
//! loop learns how long it may sleep.

use super::safety::Grant;
use super::{ClockOp, Engine, EngineError, MAX_SLEEP};
use crate::config::Config;
use crate::domain::lifecycle::{Effect, Resource, Rules, State};
use crate::store::WriteSet;
use crate::time::{fmt_rfc3339, Timestamp};
use std::time::Duration;
use tokio::sync::oneshot;

/// Deadline index entries the tick reads, runs and writes back at a time.
pub(super) const TICK_SLICE: usize = 1000;

/// Most deletions one step begins (issue 11). A burst of 100,000 due at
/// once used to begin whole in one step: every record read, judged,
/// written and audited before the first executor call, nothing else
/// answered meanwhile, and every call queued in memory. Now a step begins
/// at most this many (the guard still judges the burst whole, once), the
/// executor calls of that slice go out, and the next step begins more.
pub(super) const START_SLICE: usize = 1000;

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
    /// ([`Engine::run_due`]), then reporting the holds whose review date
    /// has come ([`Engine::report_reviews`]: they stay in force).
    pub(super) fn tick_through(&mut self, now: Timestamp, horizon: Timestamp) -> Result<(), EngineError> {
        self.run_due(now, horizon)?;
        self.run_due_subjects(now, horizon)?;
        self.report_reviews(now)
    }

    /// Runs what is due, looking at every resource indexed up to `horizon`
    /// (later than `now` at start: the leases of calls the previous run left
    /// in flight). What the lifecycle does is decided at `now` alone.
    ///
    /// The index is read in slices of [`TICK_SLICE`] entries, each slice's
    /// changes written to the store in one commit before the next is read
    /// (issue 11: a burst of 100,000 due at once is never read whole, nor
    /// written one resource at a time). A step begins at most its start
    /// budget of deletions ([`Engine::start_budget`]); once that is spent
    /// the tick stops at the next deletion that would begin (the index is
    /// in due order, so what is left came due last) and leaves a backlog
    /// that the next steps take up without sleeping, and that holds back
    /// the answer to a clock move. Work that begins no deletion (buffer
    /// starts, notices, retries, purges) is held back behind a burst for
    /// at most [`MAX_SLEEP`]: then a pass reads the whole index, passing
    /// over the deletions it may not begin yet (a store whose calls hang
    /// must not hold up the rest).
    fn run_due(&mut self, now: Timestamp, horizon: Timestamp) -> Result<(), EngineError> {
        // The index is read from the store: the group's writes first.
        self.settle()?;
        // A start-up's look-ahead lasts until a pass gets through it.
        let horizon = self.resume_until.take().map_or(horizon, |h| h.max(horizon));
        let rules = self.rules();
        let mut judged_open = rules.may_start;
        let approved_open = self.approved_may_start();
        if !judged_open {
            // Whatever stopped deletions, the burst is judged again after.
            self.safety.burst = None;
        }
        let mut budget = self.start_budget();
        let may_begin = judged_open || approved_open;
        let mono = self.clock.monotonic();
        let whole = self.whole_pass_at.is_none_or(|at| mono.saturating_sub(at) >= MAX_SLEEP);
        self.backlog = false;
        loop {
            let carried = self.safety.burst.is_some();
            if judged_open && !carried {
                self.judge_starts(now)?;
            }
            // A trip in this tick holds what it judged, and the rest of the tick.
            judged_open &= !self.safety.guard_tripped;
            // A trip also stops what already began from going further.
            let allowed = rules.may_start && !self.safety.guard_tripped;
            let gates = Gates { allowed, judged_open, approved_open };
            let (mut changed, mut passed_over) = (false, false);
            let mut slice = self.store.due(horizon, TICK_SLICE)?;
            while let Some((last_due, last_id)) = slice.last().cloned() {
                for (due, id) in slice {
                    if may_begin && budget == 0 && self.safety.may_cover(&id) {
                        if !whole {
                            self.backlog = true;
                            self.resume_until = (horizon > now).then_some(horizon);
                            return self.settle();
                        }
                        passed_over = true;
                        continue;
                    }
                    changed |= self.run_deadline(&id, due, now, gates, &mut budget)?;
                }
                self.settle()?;
                slice = self.store.due_after((last_due, &last_id), horizon, TICK_SLICE)?;
            }
            self.whole_pass_at = Some(mono);
            if passed_over {
                // Deletions judged or approved are still to begin.
                self.backlog = true;
                self.resume_until = (horizon > now).then_some(horizon);
                return Ok(());
            }
            // The pass reached the end of what is due: the burst is over
            // (anything of it not begun is no longer due for that
            // deletion). One judged in an earlier step is judged again at
            // once, for what came due since, rather than after a sleep.
            self.safety.burst = None;
            let rejudge = carried && judged_open;
            if !changed && !rejudge {
                return Ok(());
            }
        }
    }

    /// How many deletions this step may begin: [`Engine::start_slice`], less
    /// as executor calls pile up beyond two slices' worth (the calls of a
    /// burst are begun about as fast as the executors finish them, so they
    /// never all wait in memory).
    pub(super) fn start_budget(&self) -> usize {
        self.start_slice.min(self.call_room().saturating_sub(self.calls.len()))
    }

    /// Executor calls queued or running beyond which no deletion begins.
    fn call_room(&self) -> usize {
        self.start_slice.saturating_mul(2)
    }

    /// Whether the last tick left due work and the next step may take it
    /// up at once (rather than when an executor call reports back).
    pub(super) fn backlog_ready(&self) -> bool {
        self.backlog && self.calls.len() < self.call_room()
    }

    /// Whether an approved start may begin: a tripped guard does not stop
    /// those (the approval released exactly them), while dry run, a pause
    /// or a clock anomaly do.
    pub(super) fn approved_may_start(&self) -> bool {
        !self.config.safety.dry_run && !self.safety.paused && !self.safety.clock_anomaly
    }

    /// Runs one resource's deadline (indexed at `due`); true when its state
    /// moved. A deletion begins only if `gates` let it and it is covered
    /// (judged or approved for exactly that deletion), and then spends one
    /// of `budget`.
    fn run_deadline(
        &mut self,
        id: &str,
        due: Timestamp,
        now: Timestamp,
        gates: Gates,
        budget: &mut usize,
    ) -> Result<bool, EngineError> {
        let Some(mut r) = self.read_resource(id)? else { return Ok(false) };
        let Some(policy) = self.config.products.get(&r.product).cloned() else {
            tracing::error!(resource = %r.id, product = %r.product, "product is not configured: deadline not run");
            return Ok(false);
        };
        let before = r.clone();
        // Resources whose deletion already began go on (purges at expiry
        // are gated by the daemon-wide switches alone); others begin only
        // if covered.
        let grant = if before.state.is_final() || *budget == 0 || !self.safety.may_cover(id) {
            None
        } else {
            self.would_start(&r, now).and_then(|d| self.safety.grant(id, &d, gates.judged_open, gates.approved_open))
        };
        let may_start = (gates.allowed && before.state.is_final()) || grant.is_some();
        let mut fx = self.advance(&mut r, &policy, now, may_start);
        fx.extend(self.queue_notices(&mut r, &policy, now));
        if r.state == State::Deleting && before.state != State::Deleting {
            let grant = grant.expect("only a covered resource begins deleting");
            r.guard_approved = grant == Grant::Approved;
            self.safety.begun(id, grant, now);
            *budget -= 1;
            if grant == Grant::Approved && self.safety.approved.is_empty() {
                // The last approved start began: the stored approval is used up.
                self.commit(WriteSet { guard: Some(self.safety.state()), ..Default::default() })?;
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
        if !self.backlog && self.calls.is_empty() && self.notices.in_flight.is_empty() {
            let now = self.clock.now();
            for w in self.clock_waiters.drain(..) {
                let _ = w.send(Ok(now));
            }
        }
    }

    /// How long to sleep: until the next deadline or hold review date, at
    /// most [`MAX_SLEEP`]; not at all while due work is left that the next
    /// step may take up.
    pub(super) fn sleep_duration(&self) -> Result<Duration, EngineError> {
        if self.backlog_ready() {
            return Ok(Duration::ZERO);
        }
        let now = self.clock.now();
        let next = [
            self.store.next_due_after(now)?,
            self.store.next_review_after(now)?,
            self.store.next_subject_due_after(now)?,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(match next {
            Some(t) => (t - now).to_std().unwrap_or_default().min(MAX_SLEEP),
            None => MAX_SLEEP,
        })
    }
}

/// What may begin in one tick.
#[derive(Clone, Copy)]
struct Gates {
    /// Nothing stops deletions: what already began goes on.
    allowed: bool,
    /// Starts the guard judged may begin.
    judged_open: bool,
    /// Starts an operator approved may begin.
    approved_open: bool,
}
