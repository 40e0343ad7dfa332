//! The stops that keep deletions from starting, and how they are lifted:
//! the wall-clock jump check (`safety.max_clock_jump`), the mass-deletion
//! guard judging each batch of starts (`[safety.guard]`), and an
//! operator's approval releasing exactly the batch it held.
//!
//! A batch the guard let through (a [`Burst`]) and an approved batch are
//! begun a slice a step (issue 11), so both are kept between steps, each
//! resource with the deletion date it was judged or approved for: a
//! resource that comes to another deletion meanwhile (renewed, then
//! released) is not covered by them and waits to be judged.

use super::{Approval, BatchSummary, Engine, EngineError};
use crate::audit::AuditKind;
use crate::domain::clock_jump::{self, Reading};
use crate::domain::guard::{is_subject_candidate, Deletion, Guard, GuardState, HeldBatch, Verdict};
use crate::domain::lifecycle::{Resource, Rules, State};
use crate::store::{Flag, Store, StoreError, WriteSet};
use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::json;
use std::collections::HashMap;

/// The daemon-wide stops on deletion (an operator's pause, a clock
/// anomaly, a tripped guard; each durable as a store flag) and what the
/// guard and the clock check keep between steps.
pub(super) struct Safety {
    /// An operator paused deletions: no deletion starts, no executor is
    /// called.
    pub(super) paused: bool,
    /// A wall-clock jump beyond `safety.max_clock_jump` was seen.
    pub(super) clock_anomaly: bool,
    /// The mass-deletion guard tripped.
    pub(super) guard_tripped: bool,
    /// Deletion starts counted by the mass-deletion guard.
    pub(super) guard: Guard,
    /// The batch the guard holds for approval (durable in the store).
    held_batch: Option<HeldBatch>,
    /// Resources of approved batches, with the deletion date each was held
    /// for: they may start that deletion (and no other) without being
    /// judged again. Kept (and stored) until begun, or until a judgment
    /// finds the resource no longer due for that deletion.
    pub(super) approved: HashMap<String, Deletion>,
    /// The batch the guard last let through, minus what has begun: it
    /// begins without being judged again until a pass of the deadline
    /// index reaches its end (or something stops deletions).
    pub(super) burst: Option<Burst>,
    /// Resources tracked, for the guard's fraction.
    pub(super) tracked: u64,
    /// The last clock reading, to notice jumps.
    pub(super) last_reading: Option<Reading>,
}

impl Safety {
    /// The stops as the store has them. The guard's windows start empty:
    /// `catch_up` rebuilds them from the resources' start times.
    pub(super) fn load(store: &dyn Store) -> Result<Safety, StoreError> {
        let paused = store.flag(Flag::Paused)?;
        let clock_anomaly = store.flag(Flag::ClockAnomaly)?;
        let guard_tripped = store.flag(Flag::GuardTripped)?;
        let guard_state = store.guard_state()?;
        let tracked = store.resource_count()?;
        Ok(Safety {
            paused,
            clock_anomaly,
            guard_tripped,
            guard: Guard::default(),
            held_batch: guard_state.held,
            approved: guard_state.approved.into_iter().collect(),
            burst: None,
            tracked,
            last_reading: None,
        })
    }

    /// What the store keeps of the guard: the held batch and the approved
    /// starts not yet begun (sorted, so equal states write equal bytes).
    pub(super) fn state(&self) -> GuardState {
        let mut approved: Vec<(String, Deletion)> = self.approved.iter().map(|(k, v)| (k.clone(), *v)).collect();
        approved.sort();
        GuardState { held: self.held_batch.clone(), approved }
    }

    /// What holds deletions back, for systemd's status line.
    pub(super) fn gates(&self, dry_run: bool) -> crate::service::Gates {
        crate::service::Gates {
            dry_run,
            paused: self.paused,
            guard_tripped: self.guard_tripped,
            clock_anomaly: self.clock_anomaly,
        }
    }
}

/// Starts the guard judged as one batch and let through, not yet begun:
/// each resource with the deletion date it was judged for.
#[derive(Default)]
pub(super) struct Burst {
    judged: HashMap<String, Deletion>,
}

/// Why a resource may begin its deletion now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grant {
    /// Part of the batch the guard let through: counted by the guard.
    Judged,
    /// Part of a batch an operator approved: never counted.
    Approved,
}

impl Safety {
    /// Whether `id`, about to begin `deletion`, is covered: approved for
    /// exactly that deletion (`approved_open`: only a pause, a clock
    /// anomaly or dry run stop those), or judged for it in the current
    /// burst (`judged_open`: nothing stops deletions).
    pub(super) fn grant(&self, id: &str, deletion: &Deletion, judged_open: bool, approved_open: bool) -> Option<Grant> {
        let judged = self.burst.as_ref().map(|b| &b.judged);
        self.grant_from(id, deletion, judged, judged_open, approved_open)
    }

    /// Whether the subject erasure `id`, about to begin `deletion`, is
    /// covered: approved for exactly it (`approved_open`), or judged for it
    /// in this pass of the subjects (`judged`, when `judged_open`).
    pub(super) fn grant_personal(
        &self,
        id: &str,
        deletion: &Deletion,
        judged: &HashMap<String, Deletion>,
        judged_open: bool,
        approved_open: bool,
    ) -> Option<Grant> {
        self.grant_from(id, deletion, Some(judged), judged_open, approved_open)
    }

    /// The one rule of both: approved for exactly that deletion, or judged
    /// for it in `judged`.
    fn grant_from(
        &self,
        id: &str,
        deletion: &Deletion,
        judged: Option<&HashMap<String, Deletion>>,
        judged_open: bool,
        approved_open: bool,
    ) -> Option<Grant> {
        if approved_open && self.approved.get(id) == Some(deletion) {
            return Some(Grant::Approved);
        }
        (judged_open && judged.and_then(|j| j.get(id)) == Some(deletion)).then_some(Grant::Judged)
    }

    /// Starts of the current burst let through and not yet begun.
    pub(super) fn burst_pending(&self) -> usize {
        self.burst.as_ref().map_or(0, |b| b.judged.len())
    }

    /// Whether `id` is in the current burst or an approved batch at all
    /// (the cheap check before working out its deletion date).
    pub(super) fn may_cover(&self, id: &str) -> bool {
        self.approved.contains_key(id) || self.burst.as_ref().is_some_and(|b| b.judged.contains_key(id))
    }

    /// `id` began its deletion under `grant` at `now`: counted by the guard
    /// unless approved, and no longer covered either way.
    pub(super) fn begun(&mut self, id: &str, grant: Grant, now: Timestamp) {
        match grant {
            Grant::Approved => {
                self.approved.remove(id);
            }
            Grant::Judged => {
                self.guard.started(now, 1);
                if let Some(b) = &mut self.burst {
                    b.judged.remove(id);
                }
            }
        }
    }
}

impl Engine {
    /// An operator pauses (or resumes) deletions: no deletion starts and no
    /// executor is called while paused. Durable as a flag, and audited.
    pub(super) fn set_paused(&mut self, paused: bool) -> Result<(), EngineError> {
        let now = self.clock.now();
        let mut w = WriteSet { flags: vec![(Flag::Paused, paused)], ..Default::default() };
        let kind = if paused { AuditKind::DeletionsPaused } else { AuditKind::DeletionsResumed };
        self.record(&mut w, now, kind, None, None, json!({}));
        self.commit(w)?;
        self.safety.paused = paused;
        tracing::warn!(paused, "deletions {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    /// safety.max_clock_jump: compares how far the wall clock moved with how
    /// far the monotonic clock moved since the last step. A gap beyond the
    /// limit (someone set the clock, NTP stepped it, the machine was
    /// suspended) stops deletions until an operator approves.
    pub(super) fn check_clock(&mut self) -> Result<(), EngineError> {
        let now = Reading { wall: self.clock.now(), mono: self.clock.monotonic() };
        let max = self.config.safety.max_clock_jump.to_chrono();
        if let Some(jump) = self.safety.last_reading.and_then(|last| clock_jump::jump(last, now, max)) {
            let mut w = WriteSet { flags: vec![(Flag::ClockAnomaly, true)], ..Default::default() };
            let data = json!({"expected": fmt_rfc3339(jump.expected), "wall": fmt_rfc3339(now.wall),
                              "jump_seconds": jump.by.num_seconds()});
            self.record(&mut w, now.wall, AuditKind::ClockAnomaly, None, None, data);
            self.commit(w)?;
            self.safety.clock_anomaly = true;
            tracing::error!(jump_seconds = jump.by.num_seconds(), "wall clock jumped: deletions stop until approved");
        }
        self.safety.last_reading = Some(now);
        Ok(())
    }

    /// The deletion `r` would begin if it advanced at `now` with nothing
    /// stopping it; None if it would not begin. Worked out on a copy: the
    /// pure lifecycle has no side effects, so this is exactly what the
    /// tick will do.
    pub(super) fn would_start(&self, r: &Resource, now: Timestamp) -> Option<Deletion> {
        if r.state.is_final() {
            return None;
        }
        let policy = self.config.products.get(&r.product)?;
        let rules = Rules { may_start: true, may_dispatch: false, ..self.rules() };
        let mut probe = r.clone();
        probe.advance(policy, now, rules, &|_, _| true, &|_| true);
        match (&probe.deciding, probe.state) {
            (Some(b), State::Deleting) => {
                Some(Deletion { delete_after: b.delete_after, cause: Some(b.cause), started_at: b.started_at })
            }
            _ => None,
        }
    }

    /// safety.guard: judges every deletion that would begin at `now`. The
    /// whole batch is judged before any of it begins (issue: the guard let
    /// the first part of a mass deletion through): it is let through whole
    /// (kept as the [`Burst`] the next steps begin a slice at a time), or
    /// held whole and the guard trips. Resources of a batch an operator
    /// approved are not judged again.
    pub(super) fn judge_starts(&mut self, now: Timestamp) -> Result<(), EngineError> {
        // The index is read a slice at a time, each record read and
        // dropped: what the batch keeps is each candidate's id and the
        // deletion it was judged for (about 100 bytes; the guard judges,
        // digests and holds the batch whole, safety.guard), never the
        // records or the whole index at once.
        let mut fresh = Vec::new();
        let mut approved = HashMap::new();
        let mut slice = self.store.due(now, super::deadlines::TICK_SLICE)?;
        while let Some((last_due, last_id)) = slice.last().cloned() {
            for (_, id) in slice {
                let Some(r) = self.read_resource(&id)? else { continue };
                let Some(deletion) = self.would_start(&r, now) else { continue };
                match self.safety.approved.get(&id) {
                    Some(d) if *d == deletion => {
                        approved.insert(id, deletion);
                    }
                    _ => fresh.push((id, deletion)),
                }
            }
            slice = self.store.due_after((last_due, &last_id), now, super::deadlines::TICK_SLICE)?;
        }
        // The approval covered the batch as it stood: whatever of it is
        // not due now, has begun, or is due for another deletion (renewed,
        // then expired again) lapses, and is judged like any other if it
        // comes due. Subjects' approvals are the subjects' pass's to judge.
        approved.extend(
            self.safety.approved.iter().filter(|(id, _)| is_subject_candidate(id)).map(|(k, v)| (k.clone(), *v)),
        );
        if approved.len() != self.safety.approved.len() {
            self.safety.approved = approved;
            let w = WriteSet { guard: Some(self.safety.state()), ..Default::default() };
            self.commit(w)?;
        }
        let g = &self.config.safety.guard;
        match self.safety.guard.judge(now, &fresh, self.safety.tracked, &g.short(), &g.long()) {
            Verdict::Start => self.safety.burst = Some(Burst { judged: fresh.into_iter().collect() }),
            Verdict::Hold(batch) => {
                self.safety.burst = None;
                self.trip_guard(now, batch)?;
            }
        }
        Ok(())
    }

    /// The mass-deletion guard trips: the batch is held whole and no
    /// deletion starts until an operator approves. Recorded once per trip,
    /// with the batch's size and digest (what the operator approves).
    pub(super) fn trip_guard(&mut self, now: Timestamp, batch: HeldBatch) -> Result<(), EngineError> {
        let g = &self.config.safety.guard;
        let limits = match batch.window {
            crate::domain::guard::WindowKind::Short => g.short(),
            crate::domain::guard::WindowKind::Long => g.long(),
        };
        let data = crate::domain::guard::tripped_record(&batch, &limits, self.safety.tracked);
        self.safety.held_batch = Some(batch.clone());
        let state = self.safety.state();
        let mut w = WriteSet { flags: vec![(Flag::GuardTripped, true)], guard: Some(state), ..Default::default() };
        self.record(&mut w, now, AuditKind::GuardTripped, None, None, data);
        self.commit(w)?;
        self.safety.guard_tripped = true;
        tracing::error!(batch = batch.size(), digest = %batch.digest, window = ?batch.window,
            started_in_window = batch.started_in_window,
            "mass-deletion guard tripped: the batch is held whole; deletions stop until approved");
        Ok(())
    }

    /// An operator lifts a tripped guard and a clock anomaly. The held batch
    /// is released exactly: its resources may start the deletion they were
    /// held for without being judged again (and are not counted), kept
    /// (and stored) until they have; anything else is judged as before. An
    /// approval never resets the windows.
    pub(super) fn approve(
        &mut self,
        batch_digest: Option<String>,
    ) -> Result<Result<Approval, EngineError>, EngineError> {
        if let Some(given) = batch_digest {
            let held = self.safety.held_batch.as_ref().map(|b| b.digest.clone());
            if held.as_deref() != Some(given.as_str()) {
                let held = held.map_or_else(|| "no batch".to_string(), |d| format!("batch {d}"));
                return Ok(Err(EngineError::BatchMismatch { given, held }));
            }
        }
        let mut lifted = Vec::new();
        if self.safety.guard_tripped {
            lifted.push("guard");
        }
        if self.safety.clock_anomaly {
            lifted.push("clock_anomaly");
        }
        let now = self.clock.now();
        let batch = self.safety.held_batch.take();
        let summary = batch.as_ref().map(|b| BatchSummary { size: b.size(), digest: b.digest.clone() });
        self.safety.approved.extend(batch.iter().flat_map(|b| b.candidates()));
        let state = self.safety.state();
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
        self.commit(w)?;
        self.safety.guard_tripped = false;
        self.safety.clock_anomaly = false;
        self.safety.last_reading = Some(Reading { wall: now, mono: self.clock.monotonic() });
        tracing::warn!(?lifted, batch = summary.as_ref().map(|b| b.size), "deletions approved by an operator");
        Ok(Ok(Approval { approved: lifted, batch: summary }))
    }
}
