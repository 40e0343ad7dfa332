//! Copies and retries: each copy's executor steps, failures with backoff,
//! backups registered, restricted and purged (general terms 4.1.5;
//! privacy policy 5.3.3).

use super::*;

impl Resource {
    /// Records, once per copy, a restricted business backup kept past its
    /// store's `max_restricted` (domain-rules §2: a bounded exception): an
    /// operator must act (the backup system cannot delete it, or its expiry
    /// is set too far out); nothing is deleted by this.
    pub(super) fn restrictions_overdue(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        let held = !self.holds.is_empty();
        let mut overdue = Vec::new();
        for c in &mut self.copies {
            let restricted = matches!(c.state, CopyState::Restricted | CopyState::Restricting);
            if restricted && !c.restriction_overdue && c.restricted_until.is_some_and(|t| t <= now) {
                c.restriction_overdue = true;
                overdue.push(json!({"store": c.store, "copy": c.copy, "state": c.state,
                    "restricted_until": c.restricted_until.map(fmt_rfc3339),
                    "expires_at": c.expires_at.map(fmt_rfc3339), "held": held}));
            }
        }
        for data in overdue {
            let what = format!("copy {} in store {} restricted past its limit", data["copy"], data["store"]);
            self.log(now, "copy.restriction_overdue", what);
            fx.push(Effect::Record { kind: AuditKind::CopyRestrictionOverdue, data });
        }
    }

    /// Records an executor's confirmation that a copy is gone.
    pub fn copy_done(&mut self, store: &str, copy: &str, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(c) = self.copies.iter_mut().find(|c| c.store == store && c.copy == copy) else {
            return fx;
        };
        let (kind, next, what) = match c.state {
            CopyState::Deleting => (AuditKind::CopyDeleted, CopyState::Deleted, "deleted"),
            CopyState::Restricting => (AuditKind::CopyRestricted, CopyState::Restricted, "restricted until it expires"),
            CopyState::Purging => (AuditKind::CopyPurged, CopyState::Deleted, "purged"),
            _ => return fx, // a late duplicate: the completion is recorded once
        };
        c.state = next;
        c.outcome = Some(kind.as_str().trim_start_matches("copy.").to_string());
        c.done_at = Some(now);
        c.next_attempt_at = None;
        // The copy is done: an error from an earlier attempt no longer
        // describes it (the failures stay counted in the record).
        c.last_error = None;
        let mut data = json!({"store": store, "copy": copy, "class": c.class, "failures_before": c.attempts});
        if let Some(exp) = c.expires_at {
            data["expires_at"] = json!(fmt_rfc3339(exp));
        }
        if let (CopyState::Restricted, Some(until)) = (c.state, c.restricted_until) {
            // Why it is kept, and until when that is acceptable.
            data["reason"] = json!("purge_at_expiry");
            data["restricted_until"] = json!(fmt_rfc3339(until));
            data["outlasts_limit"] = json!(c.expires_at.is_some_and(|e| e > until));
        }
        fx.push(Effect::Record { kind, data });
        self.log(now, kind.as_str(), format!("copy {copy} in store {store} {what}"));
        self.complete_if_done(now, &mut fx);
        fx
    }

    /// Records a failed executor call: the copy stays `deleting` and is tried
    /// again later. Nothing is dropped.
    pub fn copy_failed(&mut self, store: &str, copy: &str, error: &str, now: Timestamp, rules: Rules) -> Vec<Effect> {
        let id = self.id.clone();
        let Some(c) = self.copies.iter_mut().find(|c| c.store == store && c.copy == copy) else {
            return Vec::new();
        };
        let Some(action) = c.state.action() else { return Vec::new() };
        c.attempts += 1;
        c.last_error = Some(error.to_string());
        if c.attempts >= rules.max_attempts {
            // Nothing is dropped silently: the copy is visibly stuck until an
            // operator asks for a retry.
            c.stuck = true;
            c.next_attempt_at = None;
            return vec![Effect::Record {
                kind: AuditKind::CopyStuck,
                data: json!({"store": store, "copy": copy, "action": action, "failures": c.attempts, "error": error}),
            }];
        }
        let next = later(now, retry_delay(c.attempts) + jitter(&id, store, copy, c.attempts));
        c.next_attempt_at = Some(next);
        vec![Effect::Record {
            kind: AuditKind::CopyFailed,
            data: json!({"store": store, "copy": copy, "action": action, "failures": c.attempts,
                         "error": error, "retry_at": fmt_rfc3339(next)}),
        }]
    }

    /// An operator asks to retry the stuck copies (all, or one store's):
    /// they are called again at once, with a fresh count of attempts.
    pub fn retry_stuck(&mut self, store: Option<&str>, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut retried = Vec::new();
        for c in self.copies.iter_mut().filter(|c| c.stuck && store.is_none_or(|s| s == c.store)) {
            let state = c.state;
            c.request(state, now);
            retried.push(json!({"store": c.store, "copy": c.copy}));
        }
        if !retried.is_empty() {
            self.log(now, "copy.retry", format!("{} stuck copies retried by an operator", retried.len()));
            fx.push(Effect::Record { kind: AuditKind::CopyRetry, data: json!({ "copies": retried }) });
        }
        fx
    }

    /// Registers a backup copy (`backup.created`), or notes that the backup
    /// system removed one itself (`backup.deleted`).
    pub(super) fn backup_event(
        &mut self,
        ev: &Event,
        policy: &ProductPolicy,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Rejection> {
        match &ev.body {
            EventBody::BackupCreated { store, copy, expires_at } => {
                let Some(sp) = policy.store(store).filter(|s| s.class == StoreClass::Backup) else {
                    return Err(Rejection::new(format!(
                        "store {store:?} is not a backup store of product {:?}",
                        self.product
                    )));
                };
                if self.state == State::Purged {
                    // Its certificate says every copy is gone: a new one must
                    // not exist. Refused loudly (audited) for people to act.
                    return Err(Rejection::new(format!(
                        "resource {:?} is purged: a backup of it must not exist; delete it in the backup system",
                        self.id
                    )));
                }
                if self.copies.iter().any(|c| c.store == *store && c.copy == *copy) {
                    return Err(Rejection::new(format!("backup copy {copy:?} in store {store:?} is already known")));
                }
                let mut c = DataCopy::new(store, copy, StoreClass::Backup);
                c.expires_at = Some(*expires_at);
                if self.state.is_final() {
                    // A backup made while deleting goes the way of the others.
                    begin(&mut c, policy, ev.at);
                }
                let _ = sp;
                self.copies.push(c);
                fx.push(Effect::Record {
                    kind: AuditKind::CopyRegistered,
                    data: json!({"store": store, "copy": copy, "class": "backup", "expires_at": fmt_rfc3339(*expires_at)}),
                });
                self.log(ev.at, "backup.created", format!("backup copy {copy} in store {store} registered"));
            }
            EventBody::BackupDeleted { store, copy } => {
                // Only a backup copy: an online or cache copy is deleted by
                // its executor, never written off by another system's word.
                let Some(c) = self
                    .copies
                    .iter_mut()
                    .find(|c| c.store == *store && c.copy == *copy && c.class == StoreClass::Backup)
                else {
                    return Err(Rejection {
                        message: format!("backup copy {copy:?} in store {store:?} is not known"),
                        retryable: true,
                    });
                };
                if c.state != CopyState::Deleted {
                    c.state = CopyState::Deleted;
                    c.outcome = Some("removed_by_backup_system".into());
                    c.done_at = Some(ev.at);
                    c.next_attempt_at = None;
                    c.stuck = false;
                    fx.push(Effect::Record {
                        kind: AuditKind::CopyDeleted,
                        data: json!({"store": store, "copy": copy, "class": "backup", "by": "backup_system"}),
                    });
                    self.log(ev.at, "copy.deleted", format!("backup copy {copy} removed by the backup system"));
                    // It may have been the last copy: nothing else would
                    // bring the resource to `purged` (no deadline is left).
                    self.complete_if_done(ev.at, fx);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Gives restricted backup copies recorded before `max_restricted`
    /// existed their limit, counted from the deletion start (once, at
    /// start), so they are not left out of the alert. True if changed.
    pub fn fix_restriction_limit(&mut self, policy: &ProductPolicy) -> bool {
        let Some(start) = self.deletion_started_at else { return false };
        let mut changed = false;
        for c in &mut self.copies {
            let restricted = matches!(c.state, CopyState::Restricted | CopyState::Restricting);
            let max = policy.store(&c.store).and_then(|s| s.max_restricted);
            if let (true, None, Some(max)) = (restricted, c.restricted_until, max) {
                c.restricted_until = Some(later(start, max.to_chrono()));
                changed = true;
            }
        }
        changed
    }
}

/// Asks for a copy's first step (see [`first_step`]) from `now` on; a copy
/// to be restricted gets the date its restriction may last until.
pub(super) fn begin(c: &mut DataCopy, policy: &ProductPolicy, now: Timestamp) {
    let first = first_step(c, policy, now);
    if first == CopyState::Restricting {
        let max = policy.store(&c.store).and_then(|s| s.max_restricted);
        c.restricted_until = max.map(|m| later(now, m.to_chrono()));
    }
    c.request(first, now);
}

/// The first executor step for a copy when its resource's deletion starts:
/// online and cache copies and `purge = "immediate"` backups are deleted; a
/// `purge = "at_expiry"` backup is restricted first, or purged at once if it
/// has already expired (privacy policy 5.3.3).
pub(super) fn first_step(c: &DataCopy, policy: &ProductPolicy, now: Timestamp) -> CopyState {
    let at_expiry = policy.store(&c.store).is_some_and(|s| s.purge == crate::domain::policy::PurgeMode::AtExpiry);
    match (c.class, at_expiry) {
        (StoreClass::Backup, true) if c.expires_at.is_some_and(|t| t <= now) => CopyState::Purging,
        (StoreClass::Backup, true) => CopyState::Restricting,
        _ => CopyState::Deleting,
    }
}

/// Deterministic jitter (0 to 25 % of the retry delay, whole seconds) from the copy's
/// identity, so retries of many copies spread out without a random source
/// in the pure lifecycle.
pub(super) fn jitter(resource: &str, store: &str, copy: &str, attempt: u32) -> chrono::Duration {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{resource}\n{store}\n{copy}\n{attempt}").as_bytes());
    let fraction = u16::from_be_bytes([h[0], h[1]]) as i64; // 0..65535
    chrono::Duration::seconds(retry_delay(attempt).num_seconds() * fraction / (4 * 65_536))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use chrono::Duration;

    /// A postpaid resource with a `tapes` backup expiring at `expires_at`,
    /// released at day 2 (so its deletion starts then), whose online and
    /// cache copies are confirmed gone at once.
    fn released_with_tape(expires_at: Timestamp) -> Resource {
        let mut r = postpaid();
        r.on(day(1), backup("tapes", "t1", expires_at));
        r.on(day(2), EventBody::Released);
        r.copy_done("primary", "primary", day(2));
        r.copy_done("cache", "cache", day(2));
        r
    }

    /// General terms 4.1.5: at the buffer's end every copy goes: online,
    /// cache and each registered backup; a `purge = "immediate"` backup is
    /// deleted with them, an `at_expiry` one restricted first (privacy
    /// policy 5.3.3).
    #[test]
    fn the_deletion_covers_online_cache_and_every_backup_copy() {
        let mut r = prepaid(day(30));
        let fx = r.on(day(5), backup("snap", "s1", day(200)));
        assert_eq!(record(&fx, AuditKind::CopyRegistered)["expires_at"], rfc(day(200)));
        r.on(day(6), backup("tapes", "t1", day(200)));

        let fx = r.tick(day(45));
        assert_eq!(record(&fx, AuditKind::DeletionStarted)["copies"], 4);
        assert_eq!(
            calls(&fx),
            [("primary", Action::Delete), ("cache", Action::Delete), ("s1", Action::Delete), ("t1", Action::Restrict)]
        );
    }

    /// Privacy policy 5.3.3: a backup that cannot go at once is restricted
    /// (no restore, read, copy or export) and purged when it expires; the
    /// resource is `deleted` meanwhile, `purged` once that copy is gone too,
    /// with every copy's outcome recorded for the certificate.
    #[test]
    fn a_backup_that_cannot_go_at_once_is_restricted_then_purged_at_expiry() {
        let mut r = released_with_tape(day(20));
        assert_eq!(r.state, State::Deleted);
        let fx = r.copy_done("tapes", "t1", day(2));
        let restricted = record(&fx, AuditKind::CopyRestricted);
        assert_eq!(
            (restricted["reason"].as_str(), restricted["outlasts_limit"].as_bool()),
            (Some("purge_at_expiry"), Some(false))
        );
        assert_eq!((r.copy("tapes", "t1").state, r.state), (CopyState::Restricted, State::Deleted));

        assert!(calls(&r.tick(day(20) - Duration::seconds(1))).is_empty());
        let fx = r.tick(day(20));
        assert_eq!(record(&fx, AuditKind::CopyPurgeStarted)["expires_at"], rfc(day(20)));
        assert_eq!(calls(&fx), [("t1", Action::Purge)]);

        let fx = r.copy_done("tapes", "t1", day(20));
        assert_eq!(kinds(&fx), [AuditKind::CopyPurged, AuditKind::ResourcePurged]);
        assert_eq!(r.state, State::Purged);
        let outcomes: Vec<_> = record(&fx, AuditKind::ResourcePurged)["copies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["outcome"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(outcomes, ["deleted", "deleted", "purged"]);
    }

    /// Privacy policy 5.3.3: an `at_expiry` backup that has already expired
    /// when the deletion starts has nothing to wait for: it is purged at once.
    #[test]
    fn an_expired_backup_is_purged_at_once() {
        let mut r = postpaid();
        r.on(day(1), backup("tapes", "t1", day(3)));
        let fx = r.on(day(5), EventBody::Released);
        assert!(calls(&fx).contains(&("t1", Action::Purge)), "{fx:?}");
        assert_eq!(r.copy("tapes", "t1").state, CopyState::Purging);
    }

    /// Domain-rules §2 (general terms 4.1.5 against privacy policy 5.3.3): a
    /// restricted business backup is a bounded exception: past the store's
    /// `max_restricted` (30 days from the deletion start) an operator is
    /// alerted, once; the alert deletes nothing, the purge still waits for
    /// the expiry.
    #[test]
    fn a_restriction_past_max_restricted_alerts_an_operator_once() {
        let mut r = released_with_tape(day(200));
        let fx = r.copy_done("tapes", "t1", day(2));
        let restricted = record(&fx, AuditKind::CopyRestricted);
        assert_eq!(
            (restricted["restricted_until"].as_str(), restricted["outlasts_limit"].as_bool()),
            (Some(&*rfc(day(32))), Some(true))
        );

        assert!(!kinds(&r.tick(day(32) - Duration::seconds(1))).contains(&AuditKind::CopyRestrictionOverdue));
        let fx = r.tick(day(32));
        let overdue = record(&fx, AuditKind::CopyRestrictionOverdue);
        assert_eq!((overdue["expires_at"].as_str(), overdue["held"].as_bool()), (Some(&*rfc(day(200))), Some(false)));
        assert!(calls(&fx).is_empty());
        assert_eq!(r.copy("tapes", "t1").state, CopyState::Restricted);
        assert!(!kinds(&r.tick(day(33))).contains(&AuditKind::CopyRestrictionOverdue));
    }

    /// A failed executor call is never dropped: the copy stays `deleting`,
    /// keeps the error for operators, and is called again after the
    /// backoff (1 minute, then 2, each plus up to 25 % jitter).
    #[test]
    fn a_failed_call_is_retried_with_backoff() {
        let mut r = deleting_primary();

        let fx = r.copy_failed("primary", "primary", "exit 3", day(1), rules());
        let c = r.copy("primary", "primary");
        assert_eq!((c.state, c.attempts, c.last_error.as_deref()), (CopyState::Deleting, 1, Some("exit 3")));
        let next = c.next_attempt_at.unwrap();
        assert!(next >= day(1) + Duration::seconds(60) && next <= day(1) + Duration::seconds(75), "{next}");
        let failed = record(&fx, AuditKind::CopyFailed);
        assert_eq!((failed["retry_at"].as_str(), failed["action"].as_str()), (Some(&*rfc(next)), Some("delete")));

        assert!(calls(&r.tick(next - Duration::seconds(1))).is_empty());
        assert_eq!(calls(&r.tick(next)), [("primary", Action::Delete)]);
        r.copy_failed("primary", "primary", "exit 3", next, rules());
        let again = r.copy("primary", "primary").next_attempt_at.unwrap();
        assert!(again >= next + Duration::seconds(120) && again <= next + Duration::seconds(150), "{again}");
    }

    /// After `max_attempts` failed calls the copy is stuck: audited, visible,
    /// and not called again until an operator asks; the retry then starts
    /// afresh. The resource stays `deleting`: nothing is written off.
    #[test]
    fn after_max_attempts_a_copy_is_stuck_until_an_operator_retries() {
        let mut r = deleting_primary();
        r.copy_failed("primary", "primary", "exit 3", day(1), rules());
        r.copy_failed("primary", "primary", "exit 3", day(1), rules());
        let fx = r.copy_failed("primary", "primary", "exit 3", day(1), rules());
        assert_eq!(record(&fx, AuditKind::CopyStuck)["failures"], 3);
        let c = r.copy("primary", "primary");
        assert_eq!((c.stuck, c.next_attempt_at), (true, None));
        assert!(calls(&r.tick(day(30))).is_empty());
        assert_eq!((r.state, r.retry_due()), (State::Deleting, None));

        let fx = r.retry_stuck(None, day(30));
        assert_eq!(record(&fx, AuditKind::CopyRetry)["copies"], json!([{"store": "primary", "copy": "primary"}]));
        assert_eq!(r.copy("primary", "primary").attempts, 0);
        assert_eq!(calls(&r.tick(day(30))), [("primary", Action::Delete)]);
    }

    /// An executor's confirmation is recorded once: a late duplicate (a
    /// call repeated after a restart) records nothing more.
    #[test]
    fn a_late_duplicate_confirmation_records_nothing() {
        let mut r = postpaid();
        r.on(day(1), EventBody::Released);
        let fx = r.copy_done("primary", "primary", day(1));
        assert_eq!(record(&fx, AuditKind::CopyDeleted)["store"], "primary");
        assert!(r.copy_done("primary", "primary", day(2)).is_empty());
        assert_eq!(r.copy("primary", "primary").done_at, Some(day(1)));
    }

    /// A restricted backup the backup system removed itself (`backup.deleted`)
    /// is gone: if it was the last copy the resource is purged. A purged
    /// resource's certificate says every copy is gone, so a new backup of it
    /// is refused.
    #[test]
    fn the_backup_system_removing_the_last_copy_purges_the_resource() {
        let mut r = released_with_tape(day(200));
        r.copy_done("tapes", "t1", day(2));
        let fx = r.on(day(10), EventBody::BackupDeleted { store: "tapes".into(), copy: "t1".into() });
        assert_eq!(record(&fx, AuditKind::CopyDeleted)["by"], "backup_system");
        assert_eq!(r.state, State::Purged);
        assert_eq!(r.copy("tapes", "t1").outcome.as_deref(), Some("removed_by_backup_system"));

        let refused = r.apply(&on_r(day(11), backup("tapes", "t2", day(200))), &policy(), rules(), day(11));
        assert!(refused.unwrap_err().message.contains("is purged"));
    }

    /// Only a backup store takes backups, and only a backup copy can be
    /// written off by the backup system: an online copy is deleted by its
    /// executor, never on another system's word.
    #[test]
    fn only_backup_copies_are_registered_or_written_off_by_the_backup_system() {
        let mut r = postpaid();
        let online = r.apply(&on_r(day(1), backup("primary", "p1", day(200))), &policy(), rules(), day(1));
        assert!(online.unwrap_err().message.contains("not a backup store"));
        let gone = EventBody::BackupDeleted { store: "primary".into(), copy: "primary".into() };
        let refused = r.apply(&on_r(day(1), gone), &policy(), rules(), day(1)).unwrap_err();
        assert!(refused.retryable && refused.message.contains("not known"), "{refused:?}");
        assert_eq!(r.copy("primary", "primary").state, CopyState::Present);
    }
}
