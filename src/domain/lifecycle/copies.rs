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
