//! Buffers and deadlines: when each cause's buffer starts, when deletion
//! may run, and the forecast (domain-rules §1.2, §5.2-5.3).

use super::*;

impl Resource {
    /// Moves the resource along by time alone: term ends pass, buffers start
    /// and run out, copies whose (re)try time has come are dispatched. `busy`
    /// says whether a copy's executor call is already in flight, `sending`
    /// whether a notice (by key) is with the notifier (it is then not
    /// dropped as stale: its outcome is recorded when the notifier answers).
    pub fn advance(
        &mut self,
        policy: &ProductPolicy,
        now: Timestamp,
        rules: Rules,
        busy: &dyn Fn(&str, &str) -> bool,
        sending: &dyn Fn(&str) -> bool,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        if !self.state.is_final() {
            let started = self.start_due_buffers(policy, now, &mut fx);
            self.refresh();
            self.forget_not_before_if_active();
            // domain-rules §1.3: the tenant is told a buffer started and
            // when the data will be deleted (the earliest running deadline).
            for (cause, at) in started {
                let key = format!("{}:buffer_started:{}:{}", self.id, cause.as_str(), fmt_rfc3339(at));
                let date = self.deletion_due();
                self.queue_notice(key, NoticeKind::BufferStarted, at, date, Some(cause), None);
            }
            self.time_notices(policy, now);
            if let Some(due) = self.deletion_due() {
                // domain-rules §5.3: not before the deadline, not under a hold.
                if due <= now && self.holds.is_empty() && rules.may_start {
                    self.start_deletion(policy, now, &mut fx);
                }
            }
        }
        // After a hold is lifted, every step waits out not_before.
        let clear = self.not_before.is_none_or(|nb| nb <= now);
        if matches!(self.state, State::Deleting | State::Deleted) && self.holds.is_empty() && clear {
            // privacy policy 5.3.3: a restricted backup is purged when it
            // expires (also one whose restriction never succeeded). A new
            // destructive step driven by the clock: gated like a deletion start.
            if rules.may_start {
                let mut started = Vec::new();
                for c in &mut self.copies {
                    let restricted = matches!(c.state, CopyState::Restricted | CopyState::Restricting);
                    if restricted && c.expires_at.is_some_and(|t| t <= now) {
                        c.request(CopyState::Purging, now);
                        started.push(json!({"store": c.store, "copy": c.copy,
                                            "expires_at": c.expires_at.map(fmt_rfc3339)}));
                    }
                }
                for data in started {
                    fx.push(Effect::Record { kind: AuditKind::CopyPurgeStarted, data });
                }
            }
            if rules.may_dispatch {
                for c in &self.copies {
                    let Some(action) = c.state.action() else { continue };
                    if !c.stuck && c.next_attempt_at.is_none_or(|t| t <= now) && !busy(&c.store, &c.copy) {
                        fx.push(Effect::Dispatch { store: c.store.clone(), copy: c.copy.clone(), action });
                    }
                }
            }
        }
        self.restrictions_overdue(now, &mut fx);
        self.complete_if_done(now, &mut fx);
        self.supersede_stale_notices(now, policy.renewal_cutoff.to_chrono(), sending, &mut fx);
        fx
    }

    /// When [`Resource::advance`] must next be called, if ever: the next
    /// buffer start, the deletion (unless held), or a copy's retry.
    pub fn next_due(&self, policy: &ProductPolicy) -> Option<Timestamp> {
        let held = !self.holds.is_empty();
        match self.state {
            State::Active | State::Retained => {
                let starts = self.pending_starts(policy).into_iter().map(|(_, t)| t);
                let deletion = if held { None } else { self.deletion_due() };
                starts.chain(deletion).chain(self.notice_due(Some(policy))).min()
            }
            _ => self.retry_due(),
        }
    }

    /// While deleting: when the next copy is to be (re)tried. Needs no
    /// policy, so an executor's answer can be recorded whatever the config.
    /// Pending notices count too: they are sent whatever the state.
    pub fn retry_due(&self) -> Option<Timestamp> {
        let restricted =
            || self.copies.iter().filter(|c| matches!(c.state, CopyState::Restricted | CopyState::Restricting));
        // The restriction limit's alert is not a deletion step: no hold or
        // not_before delays it.
        let limits = restricted().filter(|c| !c.restriction_overdue).filter_map(|c| c.restricted_until).min();
        let notices = self.notice_due(None).into_iter().chain(limits).min();
        if !matches!(self.state, State::Deleting | State::Deleted) || !self.holds.is_empty() {
            return notices;
        }
        let calls = self
            .copies
            .iter()
            .filter(|c| c.state.action().is_some() && !c.stuck)
            .map(|c| c.next_attempt_at.unwrap_or(self.deletion_started_at.unwrap_or(self.created_at)));
        let expiries = restricted().filter_map(|c| c.expires_at);
        let copies = calls.chain(expiries).min().map(|due| self.not_before.map_or(due, |nb| nb.max(due)));
        copies.into_iter().chain(notices).min()
    }

    /// The deletion this resource is heading for, running or projected.
    pub fn forecast(&self, policy: &ProductPolicy) -> Option<Forecast> {
        if self.state.is_final() {
            return None;
        }
        let running = self.running_buffers().map(|b| (b.clone(), false));
        let projected = self.pending_starts(policy).into_iter().map(|(cause, start)| {
            let reason = if cause == Cause::Termination { self.termination.as_ref().map(|t| t.reason) } else { None };
            (buffer(cause, reason, start, self.late_floor_of(cause), policy), true)
        });
        let (b, projected) = running.chain(projected).min_by_key(|(b, _)| b.delete_after)?;
        let deadline = self.not_before.map_or(b.delete_after, |nb| nb.max(b.delete_after));
        Some(Forecast { cause: b.cause, reason: b.reason, deadline, policy_version: b.policy_version, projected })
    }

    /// The late fee accrued on the arrears at `now`: `rate` (a fraction, e.g.
    /// 0.0005 for 0.05 %) of the amount per whole day (general terms 2.3;
    /// trial terms 3.4).
    /// None when there is no amount, or when the fee does not fit a
    /// `Decimal` (an amount stored before amounts were bounded at ingest,
    /// issue 9): the view then shows no fee rather than a wrong one, and
    /// never panics.
    pub fn late_fee(&self, rate: Decimal, now: Timestamp) -> Option<(Decimal, i64)> {
        let a = self.arrears.as_ref()?;
        let amount = a.amount?;
        let days = now.signed_duration_since(a.started_at).num_days().max(0);
        let fee = amount.checked_mul(rate)?.checked_mul(Decimal::from(days))?;
        Some((fee.round_dp(amount.scale().max(2)), days))
    }

    /// True when the resource's deletion is due at `now` and nothing of its
    /// own stops it (no hold): only the daemon-wide gates (dry run, pause,
    /// guard, clock anomaly) stand between it and deletion.
    pub fn wants_deletion(&self, now: Timestamp) -> bool {
        !self.state.is_final() && self.holds.is_empty() && self.deletion_due().is_some_and(|d| d <= now)
    }

    /// The deletion date while a buffer runs (None once deletion started,
    /// or with no buffer running).
    pub fn deletion_date(&self) -> Option<Timestamp> {
        if matches!(self.state, State::Active | State::Retained) {
            self.deletion_due()
        } else {
            None
        }
    }

    /// Applies `policy` (the version now in force) to the running buffers
    /// set by another version: the operator's explicit action after a
    /// reload. A longer buffer moves the deadline later. A shorter one moves
    /// it earlier, but no closer than `now + min_notice` (general terms
    /// 3.2.9: a change needs notice); one already closer than that stays
    /// where it was (never later). Once deletion has started nothing moves.
    pub fn reapply_policy(
        &mut self,
        policy: &ProductPolicy,
        now: Timestamp,
        min_notice: chrono::Duration,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        if !matches!(self.state, State::Active | State::Retained) {
            return fx;
        }
        let floor = later(now, min_notice);
        let mut moved = Vec::new();
        let buffers = self
            .expiry
            .iter_mut()
            .chain(self.arrears.as_mut().and_then(|a| a.buffer.as_mut()))
            .chain(self.termination.as_mut().and_then(|t| t.buffer.as_mut()));
        for b in buffers.filter(|b| b.policy_version != policy.version) {
            let anchored = later(b.started_at, policy.buffer.for_cause(b.cause, b.reason).to_chrono());
            // A late event's floor still holds under the new policy.
            let wanted = b.late_floor.map_or(anchored, |f| f.max(anchored));
            let new = if wanted >= b.delete_after { wanted } else { b.delete_after.min(wanted.max(floor)) };
            let data = json!({"cause": b.cause, "reason": b.reason, "buffer_started_at": fmt_rfc3339(b.started_at),
                              "from": fmt_rfc3339(b.delete_after), "delete_after": fmt_rfc3339(new),
                              "policy_version_from": b.policy_version, "policy_version": policy.version});
            b.delete_after = new;
            b.policy_version = policy.version.clone();
            moved.push((b.cause, new, data));
        }
        for (cause, new, data) in moved {
            fx.push(Effect::Record { kind: AuditKind::DeletionRescheduled, data });
            self.log(
                now,
                "deletion.rescheduled",
                format!("{} deletion rescheduled to {} by an operator", cause.as_str(), fmt_rfc3339(new)),
            );
        }
        self.refresh();
        fx
    }

    /// When the deletion may run: the deciding buffer's deadline, no sooner
    /// than `not_before`.
    pub(super) fn deletion_due(&self) -> Option<Timestamp> {
        let b = self.deciding.as_ref()?;
        Some(self.not_before.map_or(b.delete_after, |nb| nb.max(b.delete_after)))
    }

    pub(super) fn running_buffers(&self) -> impl Iterator<Item = &Buffer> {
        self.expiry
            .iter()
            .chain(self.arrears.as_ref().and_then(|a| a.buffer.as_ref()))
            .chain(self.termination.as_ref().and_then(|t| t.buffer.as_ref()))
            .chain(self.release.iter())
    }

    /// The late-event floor recorded with a cause, if its event came late.
    pub(super) fn late_floor_of(&self, cause: Cause) -> Option<Timestamp> {
        match cause {
            Cause::Expiry => self.expiry_late_floor,
            Cause::Arrears => self.arrears.as_ref().and_then(|a| a.late_floor),
            Cause::Termination => self.termination.as_ref().and_then(|t| t.late_floor),
            Cause::Release => None,
        }
    }

    /// Buffers whose cause is known but whose start time is still ahead.
    pub(super) fn pending_starts(&self, policy: &ProductPolicy) -> Vec<(Cause, Timestamp)> {
        let mut out = Vec::new();
        if let (Billing::Prepaid, Some(end), None) = (self.billing, self.term_end, &self.expiry) {
            out.push((Cause::Expiry, end));
        }
        if let Some(a) = self.arrears.as_ref().filter(|a| a.buffer.is_none()) {
            let grace_end = a.grace_ends_at.unwrap_or_else(|| later(a.started_at, policy.arrears_grace.to_chrono()));
            out.push((Cause::Arrears, grace_end));
        }
        if let Some(t) = self.termination.as_ref().filter(|t| t.buffer.is_none()) {
            out.push((Cause::Termination, t.at));
        }
        out
    }

    /// Starts every buffer whose time has come, anchored at its cause's
    /// time; returns the causes started, with their start times.
    pub(super) fn start_due_buffers(
        &mut self,
        policy: &ProductPolicy,
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) -> Vec<(Cause, Timestamp)> {
        let mut started = Vec::new();
        for (cause, start) in self.pending_starts(policy) {
            if start > now {
                continue;
            }
            started.push((cause, start));
            let reason = self.termination.as_ref().map(|t| t.reason).filter(|_| cause == Cause::Termination);
            let b = buffer(cause, reason, start, self.late_floor_of(cause), policy);
            fx.push(Effect::Record {
                kind: AuditKind::BufferStarted,
                data: json!({"cause": cause, "reason": reason, "buffer_started_at": fmt_rfc3339(start)}),
            });
            self.log(start, "buffer.started", format!("{} buffer started", cause.as_str()));
            self.scheduled(&b, policy, fx);
            match cause {
                Cause::Expiry => self.expiry = Some(b),
                Cause::Arrears => {
                    if let Some(a) = &mut self.arrears {
                        a.buffer = Some(b)
                    }
                }
                Cause::Termination => {
                    if let Some(t) = &mut self.termination {
                        t.buffer = Some(b)
                    }
                }
                Cause::Release => self.release = Some(b),
            }
        }
        started
    }

    /// Fixes the arrears grace end of a record written before it was
    /// stored, from the policy in force (once, at start). True if changed.
    pub fn fix_arrears_grace(&mut self, policy: &ProductPolicy) -> bool {
        match &mut self.arrears {
            Some(a) if a.buffer.is_none() && a.grace_ends_at.is_none() => {
                a.grace_ends_at = Some(later(a.started_at, policy.arrears_grace.to_chrono()));
                true
            }
            _ => false,
        }
    }

    /// Re-derives `state` and the deciding buffer from the running buffers.
    pub(super) fn refresh(&mut self) {
        if self.state.is_final() {
            return;
        }
        self.deciding = self.running_buffers().min_by_key(|b| b.delete_after).cloned();
        self.state = if self.deciding.is_some() { State::Retained } else { State::Active };
    }

    /// Once no buffer runs, an old hold release no longer delays what a new
    /// cause starts. Only called once every buffer due by now has started:
    /// clearing it in between (a late renewal cancelling an expiry buffer
    /// that then starts again from a term end also past) let a deletion
    /// skip `after_hold_release` (found by the property test).
    pub(super) fn forget_not_before_if_active(&mut self) {
        if self.deciding.is_none() {
            self.not_before = None;
        }
    }

    pub(super) fn scheduled(&mut self, b: &Buffer, policy: &ProductPolicy, fx: &mut Vec<Effect>) {
        let buffer = humantime::format_duration(policy.buffer.for_cause(b.cause, b.reason).0);
        let mut data = json!({"cause": b.cause, "reason": b.reason, "buffer": buffer.to_string(),
                              "buffer_started_at": fmt_rfc3339(b.started_at),
                              "delete_after": fmt_rfc3339(b.delete_after), "policy_version": b.policy_version});
        if b.late_floor.is_some() {
            // The event came late: the deadline was lifted to the floor.
            data["late_event_floor"] = json!(true);
        }
        fx.push(Effect::Record { kind: AuditKind::DeletionScheduled, data });
        self.log(
            b.started_at,
            "deletion.scheduled",
            format!(
                "{} deletion scheduled for {} (policy {})",
                b.cause.as_str(),
                fmt_rfc3339(b.delete_after),
                b.policy_version
            ),
        );
    }

    pub(super) fn cancelled(&mut self, at: Timestamp, b: &Buffer, why: &str, fx: &mut Vec<Effect>) {
        fx.push(Effect::Record {
            kind: AuditKind::DeletionCancelled,
            data: json!({"cause": b.cause, "delete_after": fmt_rfc3339(b.delete_after), "why": why}),
        });
        self.log(at, "deletion.cancelled", format!("{} deletion cancelled: {why}", b.cause.as_str()));
    }

    /// Records the intent to delete every online and cache copy. The returned
    /// state must be durable before any executor is called.
    pub(super) fn start_deletion(&mut self, policy: &ProductPolicy, now: Timestamp, fx: &mut Vec<Effect>) {
        // A store added to the product since creation still gets its copy deleted.
        for s in policy.stores.iter().filter(|s| s.class != StoreClass::Backup) {
            if !self.copies.iter().any(|c| c.store == s.name) {
                self.copies.push(DataCopy::new(&s.name, &s.name, s.class));
            }
        }
        let mut n = 0;
        for c in self.copies.iter_mut().filter(|c| c.state == CopyState::Present) {
            begin(c, policy, now);
            n += 1;
        }
        self.state = State::Deleting;
        self.deletion_started_at = Some(now);
        let d = self.deciding.clone();
        fx.push(Effect::Record {
            kind: AuditKind::DeletionStarted,
            data: json!({"cause": d.as_ref().map(|b| b.cause), "reason": d.as_ref().and_then(|b| b.reason),
                         "delete_after": d.as_ref().map(|b| fmt_rfc3339(b.delete_after)),
                         "policy_version": d.as_ref().map(|b| b.policy_version.clone()), "copies": n}),
        });
        self.log(now, "deletion.started", format!("deletion of {n} copies started"));
    }

    pub(super) fn complete_if_done(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        let pending = |c: &DataCopy| c.state != CopyState::Deleted;
        let cause = self.deciding.as_ref().map(|b| b.cause);
        if self.state == State::Deleting && !self.copies.iter().filter(|c| c.class != StoreClass::Backup).any(pending) {
            self.state = State::Deleted;
            let key = format!("{}:deletion_completed", self.id);
            self.queue_notice(key, NoticeKind::DeletionCompleted, now, None, cause, None);
            fx.push(Effect::Record { kind: AuditKind::ResourceDeleted, data: json!({"cause": cause}) });
            self.log(now, "resource.deleted", "online and cache copies deleted".into());
        }
        if self.state == State::Deleted && !self.copies.iter().any(pending) {
            self.state = State::Purged;
            let d = self.deciding.clone();
            // The copies, so a certificate can be checked for completeness.
            let copies: Vec<Value> = self
                .copies
                .iter()
                .map(|c| json!({"store": c.store, "copy": c.copy, "class": c.class, "outcome": c.outcome}))
                .collect();
            fx.push(Effect::Record {
                kind: AuditKind::ResourcePurged,
                data: json!({"cause": cause, "reason": d.as_ref().and_then(|b| b.reason), "product": self.product,
                             "copies": copies, "policy_version": d.as_ref().map(|b| b.policy_version.clone()),
                             "buffer_started_at": d.as_ref().map(|b| fmt_rfc3339(b.started_at)),
                             "delete_after": d.as_ref().map(|b| fmt_rfc3339(b.delete_after))}),
            });
            self.log(now, "resource.purged", "every copy deleted".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::vocabulary::Action;
    use crate::duration::Dur;
    use chrono::Duration;

    /// General terms 4.1.5, trial terms 6.4: when the term ends, the data is
    /// kept for the product's expiry buffer (15 days), recorded with the
    /// policy version that set it, and not a second less; then deletion
    /// starts on every online and cache copy.
    #[test]
    fn expiry_keeps_the_data_for_the_buffer_then_deletes_every_copy() {
        let mut r = prepaid(day(30));
        assert!(r.tick(day(30) - Duration::seconds(1)).is_empty());
        assert_eq!(r.state, State::Active);

        let fx = r.tick(day(30));
        assert_eq!(kinds(&fx), [AuditKind::BufferStarted, AuditKind::DeletionScheduled]);
        assert_eq!(r.state, State::Retained);
        let b = r.deciding.clone().unwrap();
        assert_eq!((b.cause, b.started_at, b.delete_after), (Cause::Expiry, day(30), day(45)));
        assert_eq!(b.policy_version, policy().version);
        let scheduled = record(&fx, AuditKind::DeletionScheduled);
        assert_eq!(
            (scheduled["buffer"].as_str(), scheduled["delete_after"].as_str()),
            (Some("15days"), Some(&*rfc(day(45))))
        );

        let fx = r.tick(day(45) - Duration::seconds(1));
        assert!(!kinds(&fx).contains(&AuditKind::DeletionStarted) && calls(&fx).is_empty());
        assert_eq!(r.state, State::Retained);

        let fx = r.tick(day(45));
        assert_eq!(r.state, State::Deleting);
        assert_eq!(r.deletion_started_at, Some(day(45)));
        let started = record(&fx, AuditKind::DeletionStarted);
        assert_eq!((started["cause"].as_str(), started["copies"].as_u64()), (Some("expiry"), Some(2)));
        assert_eq!(started["policy_version"], policy().version);
        assert_eq!(calls(&fx), [("primary", Action::Delete), ("cache", Action::Delete)]);
    }

    /// General terms 4.1.4, trial terms 6.3: a release is the tenant's own
    /// instruction: deleted at once, with no buffer, and not held back by
    /// the late-event floor either.
    #[test]
    fn a_release_deletes_at_once_without_a_buffer() {
        let mut r = postpaid();
        let fx = r.on(day(3), EventBody::Released);
        assert_eq!(kinds(&fx), [AuditKind::DeletionScheduled, AuditKind::DeletionStarted]);
        assert_eq!(record(&fx, AuditKind::DeletionScheduled)["buffer"], "0s");
        assert_eq!(r.deadline(), Some(day(3)));
        assert_eq!(r.state, State::Deleting);
        assert_eq!(calls(&fx), [("primary", Action::Delete), ("cache", Action::Delete)]);

        let mut late = postpaid();
        late.late(day(3), EventBody::Released, day(20));
        assert_eq!((late.state, late.deletion_started_at), (State::Deleting, Some(day(20))));
    }

    /// Domain-rules §1.2 (general terms 7.2): a renewal during the buffer
    /// cancels the scheduled deletion, and the resource is served again.
    #[test]
    fn a_renewal_during_the_buffer_cancels_the_deletion() {
        let mut r = prepaid(day(30));
        r.tick(day(31));
        assert_eq!(r.state, State::Retained);

        let fx = r.on(day(32), EventBody::Renewed { term_end: day(400) });
        let cancelled = record(&fx, AuditKind::DeletionCancelled);
        assert_eq!((cancelled["cause"].as_str(), cancelled["why"].as_str()), (Some("expiry"), Some("renewed")));
        assert_eq!((r.state, r.deletion_date()), (State::Active, None));
        assert!(!kinds(&r.tick(day(45))).contains(&AuditKind::DeletionStarted));
        assert_eq!(r.state, State::Active);
    }

    /// General terms 2.3, 4.1.5: unpaid fees start the arrears buffer only
    /// after the product's grace (5 days), then keep the data for the
    /// arrears buffer (10 days); paying cancels the deletion (domain-rules
    /// §1.2), and nothing is left to do.
    #[test]
    fn arrears_start_their_buffer_after_the_grace_and_settling_cancels_it() {
        let mut r = postpaid();
        r.on(day(1), EventBody::ArrearsStarted { amount: None, currency: None });
        assert_eq!((r.state, r.next_due(&policy())), (State::Active, Some(day(6))));

        let fx = r.tick(day(6));
        assert_eq!(record(&fx, AuditKind::BufferStarted)["cause"], "arrears");
        assert_eq!(r.deadline(), Some(day(16)));

        let fx = r.on(day(10), EventBody::ArrearsSettled);
        assert_eq!(record(&fx, AuditKind::DeletionCancelled)["why"], "arrears settled");
        assert_eq!((r.state, r.next_due(&policy())), (State::Active, None));
    }

    /// General terms 7.5.2: a serious breach may purge at once (the product
    /// sets a zero buffer for a violation); every other reason keeps the
    /// product's termination buffer (general terms 7.4, 7.5; domain-rules
    /// §1.2).
    #[test]
    fn a_violation_may_purge_at_once_other_terminations_keep_the_buffer() {
        let mut breach = postpaid();
        let fx = breach.on(day(2), EventBody::Terminated { reason: TerminationReason::Violation });
        assert_eq!(breach.state, State::Deleting);
        assert_eq!(record(&fx, AuditKind::DeletionStarted)["reason"], "violation");

        let mut attacked = postpaid();
        attacked.on(day(2), EventBody::Terminated { reason: TerminationReason::Attack });
        assert_eq!((attacked.state, attacked.deadline()), (State::Retained, Some(day(17))));
        assert_eq!(attacked.deciding.as_ref().unwrap().reason, Some(TerminationReason::Attack));
    }

    /// Domain-rules §5.2: each cause keeps its own buffer; the earliest
    /// running one decides the deletion, and when its cause goes away the
    /// next one decides.
    #[test]
    fn the_earliest_running_buffer_decides_the_deletion() {
        let mut r = prepaid(day(30));
        r.on(day(20), EventBody::ArrearsStarted { amount: None, currency: None });
        r.tick(day(30));
        assert_eq!(r.expiry.as_ref().map(|b| b.delete_after), Some(day(45)));
        assert_eq!(r.deciding.as_ref().map(|b| (b.cause, b.delete_after)), Some((Cause::Arrears, day(35))));
        assert_eq!(r.deletion_date(), Some(day(35)));

        r.on(day(31), EventBody::ArrearsSettled);
        assert_eq!(r.deciding.as_ref().map(|b| (b.cause, b.delete_after)), Some((Cause::Expiry, day(45))));
    }

    /// Domain-rules §5.2: the forecast shows a deletion before its buffer
    /// starts, with the policy version in force, marked projected until the
    /// term end passes; once deletion has started there is nothing to
    /// forecast.
    #[test]
    fn the_forecast_projects_a_future_term_end_with_the_policy_in_force() {
        let mut r = prepaid(day(30));
        let projected = Forecast {
            cause: Cause::Expiry,
            reason: None,
            deadline: day(45),
            policy_version: policy().version,
            projected: true,
        };
        assert_eq!(r.forecast(&policy()), Some(projected.clone()));
        r.tick(day(30));
        assert_eq!(r.forecast(&policy()), Some(Forecast { projected: false, ..projected }));
        r.tick(day(45));
        assert_eq!(r.forecast(&policy()), None);
    }

    /// Domain-rules §1.2 (a deletion that runs too early is the worst
    /// failure): a termination reported after its buffer has run out stays
    /// anchored at its own time, but is deleted no sooner than
    /// `late_event_floor` (a day) after it arrived, so it shows in the
    /// forecast and can still be held.
    #[test]
    fn a_late_termination_waits_out_the_late_event_floor() {
        let mut r = postpaid();
        let fx = r.late(day(1), EventBody::Terminated { reason: TerminationReason::Agreement }, day(20));
        let b = r.deciding.clone().unwrap();
        assert_eq!((b.started_at, b.delete_after, b.late_floor), (day(1), day(21), Some(day(21))));
        assert_eq!(record(&fx, AuditKind::DeletionScheduled)["late_event_floor"], true);
        assert_eq!(r.forecast(&policy()).map(|f| f.deadline), Some(day(21)));
        assert_eq!(r.state, State::Retained);

        r.tick(day(21));
        assert_eq!(r.state, State::Deleting);
    }

    /// Issue 5 (reload), domain-rules §5.2: a running buffer keeps the policy
    /// version that set it until an operator applies the new one; a longer
    /// buffer then moves the deletion later, a shorter one no closer than
    /// `min_notice` from now. A buffer already on that version is left alone.
    #[test]
    fn reapplying_a_policy_never_brings_a_deletion_closer_than_min_notice() {
        let with_expiry = |days: u64| {
            let mut p = policy();
            p.buffer.expiry = Dur::from_secs(days * 86_400);
            p.seal()
        };
        let mut r = prepaid(day(30));
        r.tick(day(30));

        let longer = with_expiry(20);
        let fx = r.reapply_policy(&longer, day(31), Duration::days(3));
        let moved = record(&fx, AuditKind::DeletionRescheduled);
        assert_eq!(
            (moved["from"].as_str(), moved["delete_after"].as_str()),
            (Some(&*rfc(day(45))), Some(&*rfc(day(50))))
        );
        assert_eq!(
            r.deciding.as_ref().map(|b| (b.delete_after, b.policy_version.clone())),
            Some((day(50), longer.version))
        );

        let shorter = with_expiry(5);
        r.reapply_policy(&shorter, day(31), Duration::days(10));
        assert_eq!(r.deadline(), Some(day(41)), "5 days would be day 35: no closer than now + 10 days");
        assert!(r.reapply_policy(&shorter, day(32), Duration::days(0)).is_empty());
        assert_eq!(r.deadline(), Some(day(41)));
    }

    /// Domain-rules §5.3 and the daemon's gates (dry run, pause, a tripped
    /// guard, a clock anomaly): a due deletion does not start while
    /// `may_start` is off, though the resource says it wants it; and a
    /// started one calls no executor while `may_dispatch` is off.
    #[test]
    fn no_deletion_starts_and_no_executor_is_called_while_gated() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        let gated = Rules { may_start: false, may_dispatch: false, ..rules() };
        let fx = r.advance(&policy(), day(46), gated, &|_, _| false, &|_| false);
        assert!(!kinds(&fx).contains(&AuditKind::DeletionStarted));
        assert_eq!(r.state, State::Retained);
        assert!(r.wants_deletion(day(46)));

        let started = Rules { may_dispatch: false, ..rules() };
        let fx = r.advance(&policy(), day(46), started, &|_, _| false, &|_| false);
        assert_eq!(r.state, State::Deleting);
        assert!(calls(&fx).is_empty());
        assert_eq!(calls(&r.tick(day(46))).len(), 2);
    }

    /// General terms 2.3, trial terms 3.4: a late fee of 0.05 % of the
    /// overdue amount accrues per whole day (shown, never charged); without
    /// an amount there is no fee.
    #[test]
    fn the_late_fee_accrues_per_whole_day_of_arrears() {
        let mut r = postpaid();
        let amount = Some(Decimal::new(100_000, 2));
        r.on(day(1), EventBody::ArrearsStarted { amount, currency: Some("EUR".into()) });
        let (fee, days) = r.late_fee(policy().late_fee_per_day, day(11) + Duration::hours(12)).unwrap();
        assert_eq!((fee.to_string(), days), ("5.00".to_string(), 10));

        let mut unknown = postpaid();
        unknown.on(day(1), EventBody::ArrearsStarted { amount: None, currency: None });
        assert_eq!(unknown.late_fee(policy().late_fee_per_day, day(11)), None);
    }
}
