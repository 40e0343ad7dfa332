//! Notices to the tenant (domain-rules §1.3): reminders before the
//! renewal cutoff, buffer starts, warnings and completion, at least once,
//! never moving a deadline.

use super::*;

impl Resource {
    /// Drops the pending notices whose news is no longer true, so a notice
    /// that waited (the notifier was down) never tells a tenant who renewed
    /// that their data will be deleted, or names a date that moved: a
    /// reminder for a term end that changed or passed into a buffer; a
    /// warning for a date that moved, a hold, or a deletion that started or
    /// was cancelled; a buffer start whose buffer is no longer running. A
    /// buffer start whose deletion date moved is sent with the new date. A
    /// reminder whose renewal cutoff passed while it waited would ask for
    /// a payment that is already late: dropped too.
    pub(super) fn supersede_stale_notices(
        &mut self,
        now: Timestamp,
        renewal_cutoff: chrono::Duration,
        sending: &dyn Fn(&str) -> bool,
        fx: &mut Vec<Effect>,
    ) {
        let date = self.deletion_due();
        let (state, held, term_end, expiry) =
            (self.state, !self.holds.is_empty(), self.term_end, self.expiry.is_some());
        let running: Vec<(Cause, Timestamp)> = self.running_buffers().map(|b| (b.cause, b.started_at)).collect();
        let mut dropped = Vec::new();
        for n in self.notices.iter_mut().filter(|n| n.sent_at.is_none() && !sending(&n.key)) {
            let current = match n.kind {
                NoticeKind::RenewalReminder => {
                    let before_cutoff = n.date.is_some_and(|d| now < earlier(d, renewal_cutoff));
                    state == State::Active && !expiry && term_end == n.date && before_cutoff
                }
                NoticeKind::DeletionWarning => state == State::Retained && !held && date == n.date,
                NoticeKind::BufferStarted => {
                    let live = state == State::Retained && n.cause.is_some_and(|c| running.contains(&(c, n.due_at)));
                    if live {
                        n.date = date;
                    }
                    live
                }
                NoticeKind::DeletionCompleted => true,
            };
            if !current {
                n.sent_at = Some(now);
                n.superseded = true;
                dropped.push(json!({"key": n.key, "notice": n.kind.as_str(), "date": n.date.map(fmt_rfc3339)}));
            }
        }
        for data in dropped {
            fx.push(Effect::Record { kind: AuditKind::NoticeSuperseded, data });
        }
    }

    /// Queues a notice unless one with the same key exists (sent or
    /// pending): the key is the dedupe record.
    pub(super) fn queue_notice(
        &mut self,
        key: String,
        kind: NoticeKind,
        due_at: Timestamp,
        date: Option<Timestamp>,
        cause: Option<Cause>,
        offset_secs: Option<u64>,
    ) {
        if self.notices.iter().any(|n| n.key == key) {
            return;
        }
        self.notices.push(Notice {
            key,
            kind,
            due_at,
            date,
            cause,
            offset_secs,
            sent_at: None,
            attempts: 0,
            next_attempt_at: None,
            superseded: false,
        });
    }

    /// The time-driven notices that could still fall due, with their keys:
    /// the renewal reminder while the term runs (domain-rules §1.3), and one
    /// warning per `notices` offset before the deletion date while a buffer
    /// runs and no hold covers the resource. A warning whose time falls
    /// before its buffer started is left out: the buffer-start notice has
    /// already named the date. A changed date (a hold pushed it back, a
    /// renewal moved the term end) gives new keys, so the tenant hears of it.
    pub(super) fn notice_times(
        &self,
        policy: &ProductPolicy,
    ) -> Vec<(String, NoticeKind, Timestamp, Timestamp, Option<u64>)> {
        let mut out = Vec::new();
        if let (State::Active, Billing::Prepaid, Some(end), None) =
            (self.state, self.billing, self.term_end, &self.expiry)
        {
            // domain-rules §1.3: the renewal is due `renewal_cutoff` before
            // the term end (general terms 2.3.1.3); each reminder comes its
            // offset before that cutoff.
            let cutoff = earlier(end, policy.renewal_cutoff.to_chrono());
            for offset in &policy.renewal_reminder {
                let at = earlier(cutoff, offset.to_chrono());
                let secs = offset.0.as_secs();
                let key = format!("{}:renewal_reminder:{secs}s:{}", self.id, fmt_rfc3339(end));
                out.push((key, NoticeKind::RenewalReminder, at, end, Some(secs)));
            }
        }
        if let (State::Retained, true, Some(b), Some(date)) =
            (self.state, self.holds.is_empty(), self.deciding.as_ref(), self.deletion_due())
        {
            for offset in &policy.notices {
                let Some(at) = date.checked_sub_signed(offset.to_chrono()) else { continue };
                if at < b.started_at {
                    continue;
                }
                let secs = offset.0.as_secs();
                let key = format!("{}:deletion_warning:{secs}s:{}", self.id, fmt_rfc3339(date));
                out.push((key, NoticeKind::DeletionWarning, at, date, Some(secs)));
            }
        }
        out
    }

    /// Queues the time-driven notices due at `now` whose date is still
    /// ahead (a reminder after the term ended, or a warning after the
    /// deletion started, would announce the past). Of several warnings (or
    /// reminders) already due for one date (after downtime, or a hold that
    /// moved the date), only the most imminent is sent: the others say less.
    pub(super) fn time_notices(&mut self, policy: &ProductPolicy, now: Timestamp) {
        let cause = self.deciding.as_ref().map(|b| b.cause);
        // A reminder is only worth sending before the renewal cutoff.
        let until = |kind: NoticeKind, date: Timestamp| match kind {
            NoticeKind::RenewalReminder => earlier(date, policy.renewal_cutoff.to_chrono()),
            _ => date,
        };
        let due: Vec<_> = self
            .notice_times(policy)
            .into_iter()
            .filter(|(_, kind, at, date, _)| {
                *at <= now && now < until(*kind, *date) && !self.superseded(*kind, *at, *date)
            })
            .collect();
        let latest = |k: NoticeKind| due.iter().filter(|n| n.1 == k).map(|(_, _, at, _, _)| *at).max();
        let (latest_warning, latest_reminder) =
            (latest(NoticeKind::DeletionWarning), latest(NoticeKind::RenewalReminder));
        for (key, kind, at, date, offset) in due {
            let most_imminent = match kind {
                NoticeKind::DeletionWarning => Some(at) == latest_warning,
                NoticeKind::RenewalReminder => Some(at) == latest_reminder,
                _ => true,
            };
            if most_imminent {
                let cause = if kind == NoticeKind::RenewalReminder { Some(Cause::Expiry) } else { cause };
                self.queue_notice(key, kind, at, Some(date), cause, offset);
            }
        }
    }

    /// True when a notice of `kind` for `date` falling due at `at` will
    /// never be sent: one of the same kind for the same date, due later,
    /// is already queued (see [`Resource::time_notices`]).
    pub(super) fn superseded(&self, kind: NoticeKind, at: Timestamp, date: Timestamp) -> bool {
        self.notices.iter().any(|n| n.kind == kind && n.date == Some(date) && n.due_at > at)
    }

    /// The earliest time a notice needs attention: a pending one's (re)send,
    /// or a time-driven one yet to fall due.
    pub(super) fn notice_due(&self, policy: Option<&ProductPolicy>) -> Option<Timestamp> {
        let pending = self.notices.iter().filter_map(Notice::send_due);
        let future = policy
            .map(|p| self.notice_times(p))
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, kind, at, date, _)| {
                let until = match (kind, policy) {
                    (NoticeKind::RenewalReminder, Some(p)) => earlier(*date, p.renewal_cutoff.to_chrono()),
                    _ => *date,
                };
                at < &until && !self.notices.iter().any(|n| &n.key == key) && !self.superseded(*kind, *at, *date)
            })
            .map(|(_, _, at, _, _)| at);
        pending.chain(future).min()
    }

    /// True when nothing about this resource can happen any more: purged,
    /// and no notice waiting. Until then its product must stay configured.
    pub fn is_settled(&self) -> bool {
        self.state == State::Purged && self.notices.iter().all(|n| n.sent_at.is_some())
    }

    /// The notices whose send (or resend) is due at `now`, by key.
    pub fn notices_to_send(&self, now: Timestamp) -> Vec<&Notice> {
        self.notices.iter().filter(|n| n.send_due().is_some_and(|t| t <= now)).collect()
    }

    /// Records that the notifier confirmed a notice (`notice.sent`), or,
    /// with `skipped` giving why, that it was deliberately not sent (no
    /// notifier, or dry run: `notice.skipped`). Written once per key.
    pub fn notice_sent(&mut self, key: &str, now: Timestamp, skipped: Option<&str>) -> Vec<Effect> {
        let Some(n) = self.notices.iter_mut().find(|n| n.key == key && n.sent_at.is_none()) else {
            return Vec::new(); // a late duplicate confirmation
        };
        n.sent_at = Some(now);
        n.next_attempt_at = None;
        let mut data = json!({"key": n.key, "notice": n.kind.as_str(), "date": n.date.map(fmt_rfc3339),
                              "cause": n.cause, "due_at": fmt_rfc3339(n.due_at), "failures_before": n.attempts});
        if let Some(o) = n.offset_secs {
            data["offset"] = json!(humantime::format_duration(std::time::Duration::from_secs(o)).to_string());
        }
        let notice = n.kind;
        let (kind, what) = match skipped {
            Some(why) => {
                data["why"] = json!(why);
                (AuditKind::NoticeSkipped, "not sent")
            }
            None => (AuditKind::NoticeSent, "sent"),
        };
        self.log(now, kind.as_str(), format!("{} notice {what}", notice.as_str()));
        vec![Effect::Record { kind, data }]
    }

    /// Records a failed send: retried with the executors' backoff (capped
    /// at an hour), for as long as it takes; deadlines are not touched.
    pub fn notice_failed(&mut self, key: &str, error: &str, now: Timestamp) -> Vec<Effect> {
        let id = self.id.clone();
        let Some(n) = self.notices.iter_mut().find(|n| n.key == key && n.sent_at.is_none()) else {
            return Vec::new();
        };
        n.attempts = n.attempts.saturating_add(1);
        let next = later(now, retry_delay(n.attempts) + jitter(&id, "notice", key, n.attempts));
        n.next_attempt_at = Some(next);
        vec![Effect::Record {
            kind: AuditKind::NoticeFailed,
            data: json!({"key": key, "notice": n.kind.as_str(), "failures": n.attempts, "error": error,
                         "retry_at": fmt_rfc3339(next)}),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use chrono::Duration;

    const DAY: u64 = 86_400;

    /// The notices queued so far: each one's kind, due time and offset.
    fn queued(r: &Resource) -> Vec<(NoticeKind, Timestamp, Option<u64>)> {
        r.notices.iter().map(|n| (n.kind, n.due_at, n.offset_secs)).collect()
    }

    /// General terms 2.3.1.3, trial terms 3.2.2: the renewal is due 7 days
    /// before the term end, so each reminder comes its offset (14 and 3
    /// days) before that cutoff, not before the term end.
    #[test]
    fn renewal_reminders_come_before_the_7_day_cutoff() {
        let mut r = prepaid(day(60));
        assert_eq!(r.next_due(&policy()), Some(day(39)), "14 days before day 53");
        r.tick(day(39));
        let n = r.notices[0].clone();
        assert_eq!(queued(&r), [(NoticeKind::RenewalReminder, day(39), Some(14 * DAY))]);
        assert_eq!((n.date, n.cause), (Some(day(60)), Some(Cause::Expiry)));
        assert_eq!(n.key, format!("r:renewal_reminder:{}s:{}", 14 * DAY, rfc(day(60))));

        r.notice_sent(&n.key, day(39), None);
        assert_eq!(r.next_due(&policy()), Some(day(50)), "3 days before day 53");
        r.tick(day(50));
        assert_eq!(queued(&r)[1], (NoticeKind::RenewalReminder, day(50), Some(3 * DAY)));
    }

    /// A reminder is worth sending only before the cutoff: after downtime
    /// only the most imminent one due is queued, none once the cutoff has
    /// passed, and one still waiting at the cutoff is dropped unsent (it
    /// would ask for a payment already late).
    #[test]
    fn no_reminder_is_sent_after_the_renewal_cutoff() {
        let mut r = prepaid(day(60));
        r.tick(day(51));
        assert_eq!(queued(&r), [(NoticeKind::RenewalReminder, day(50), Some(3 * DAY))]);
        let fx = r.tick(day(53));
        assert_eq!(record(&fx, AuditKind::NoticeSuperseded)["notice"], "renewal_reminder");
        assert!(r.notices[0].superseded && r.notices_to_send(day(53)).is_empty());

        let mut late = prepaid(day(60));
        late.tick(day(53));
        assert!(late.notices.is_empty());
    }

    /// Domain-rules §1.3, trial terms 11.3 (an electronic notice counts as
    /// delivered when sent): the tenant is told when a buffer starts, with
    /// the deletion date, then warned at each of the product's offsets
    /// (7 days, 1 day) before the deletion, each falling due at its offset.
    #[test]
    fn warnings_fall_due_at_the_products_offsets_before_deletion() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        let started = r.notices[0].clone();
        assert_eq!(
            (started.kind, started.date, started.cause),
            (NoticeKind::BufferStarted, Some(day(45)), Some(Cause::Expiry))
        );
        assert_eq!(started.key, format!("r:buffer_started:expiry:{}", rfc(day(30))));
        r.notice_sent(&started.key, day(30), None);

        assert_eq!(r.next_due(&policy()), Some(day(38)));
        r.tick(day(38));
        assert_eq!(queued(&r)[1], (NoticeKind::DeletionWarning, day(38), Some(7 * DAY)));
        assert_eq!(r.notices[1].date, Some(day(45)));
        let warning = r.notices[1].key.clone();
        r.notice_sent(&warning, day(38), None);
        assert_eq!(r.next_due(&policy()), Some(day(44)));
        r.tick(day(44));
        assert_eq!(queued(&r)[2], (NoticeKind::DeletionWarning, day(44), Some(DAY)));
    }

    /// A notice that waited (the notifier was down) never tells a tenant who
    /// renewed that the data will be deleted: it is dropped unsent, and the
    /// drop is audited.
    #[test]
    fn a_renewal_drops_the_pending_deletion_notices() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        r.tick(day(38));
        assert_eq!(r.notices_to_send(day(38)).len(), 2);

        let fx = r.on(day(39), EventBody::Renewed { term_end: day(400) });
        let dropped = kinds(&fx).into_iter().filter(|k| *k == AuditKind::NoticeSuperseded).count();
        assert_eq!(dropped, 2);
        assert!(r.notices.iter().all(|n| n.superseded && n.sent_at == Some(day(39))));
        assert!(r.notices_to_send(day(39)).is_empty());
    }

    /// Issue 5: a notice that cannot be sent is retried with the executors'
    /// backoff for as long as it takes, and never delays or hastens the
    /// deletion.
    #[test]
    fn a_notice_that_cannot_be_sent_never_moves_the_deletion() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        let key = r.notices[0].key.clone();
        let mut fx = Vec::new();
        for _ in 0..5 {
            fx = r.notice_failed(&key, "notifier down", day(30));
        }
        let failed = record(&fx, AuditKind::NoticeFailed);
        assert_eq!((failed["failures"].as_u64(), failed["error"].as_str()), (Some(5), Some("notifier down")));
        let retry = r.notices[0].next_attempt_at.unwrap();
        assert!(retry >= day(30) + Duration::minutes(16) && retry <= day(30) + Duration::minutes(20), "{retry}");
        assert_eq!(r.deadline(), Some(day(45)));

        r.tick(day(45));
        assert_eq!((r.state, r.deletion_started_at), (State::Deleting, Some(day(45))));
    }

    /// A notice goes out at least once and is recorded once: its key is the
    /// dedupe record, so a second confirmation records nothing and it is
    /// never queued again; one deliberately not sent (no notifier, dry run)
    /// says why.
    #[test]
    fn a_notice_is_recorded_once_per_key() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        r.tick(day(38));
        let (started, warning) = (r.notices[0].key.clone(), r.notices[1].key.clone());

        let fx = r.notice_sent(&warning, day(38), None);
        let sent = record(&fx, AuditKind::NoticeSent);
        assert_eq!((sent["offset"].as_str(), sent["date"].as_str()), (Some("7days"), Some(&*rfc(day(45)))));
        assert!(r.notice_sent(&warning, day(39), None).is_empty());

        let fx = r.notice_sent(&started, day(38), Some("dry run"));
        assert_eq!(record(&fx, AuditKind::NoticeSkipped)["why"], "dry run");
        r.tick(day(39));
        assert_eq!(r.notices.len(), 2);
        assert!(r.notices_to_send(day(39)).is_empty());
    }

    /// Domain-rules §1.3: once the online and cache copies are gone the
    /// tenant is told; a purged resource is settled (its product may leave
    /// the config) only when no notice waits any more.
    #[test]
    fn the_tenant_is_told_the_deletion_completed_before_the_resource_is_settled() {
        let mut r = postpaid();
        r.on(day(1), EventBody::Released);
        r.copy_done("primary", "primary", day(1));
        r.copy_done("cache", "cache", day(1));
        assert_eq!(r.state, State::Purged);
        assert_eq!(queued(&r), [(NoticeKind::DeletionCompleted, day(1), None)]);
        assert!(!r.is_settled());

        r.notice_sent("r:deletion_completed", day(1), None);
        assert!(r.is_settled());
    }
}
