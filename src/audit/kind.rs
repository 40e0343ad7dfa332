//! The vocabulary of audit records (product-spec §7): every kind the daemon
//! writes, as one type, so a misspelt kind is a compile error rather than a
//! record nobody finds. The log itself hashes the kind as a string and
//! reads back any string (`verify` checks logs written by any version).

use serde::Serialize;

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What an audit record says happened.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditKind {
            $($(#[$doc])* $variant,)*
        }

        impl AuditKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The name written in the record's `kind` field.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $name,)*
                }
            }

            /// The kind a record's `kind` field names, if this build knows it.
            pub fn parse(name: &str) -> Option<AuditKind> {
                match name {
                    $($name => Some(AuditKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// An event was applied.
    EventApplied => "event.applied",
    /// An event was refused by the state (answered `rejected`).
    EventRejected => "event.rejected",
    /// A buffer started (its cause's time came).
    BufferStarted => "buffer.started",
    /// A deletion date was set, with the policy version that set it.
    DeletionScheduled => "deletion.scheduled",
    /// An operator's apply-policy moved a deletion date.
    DeletionRescheduled => "deletion.rescheduled",
    /// A deletion was cancelled (renewal, settlement, withdrawal).
    DeletionCancelled => "deletion.cancelled",
    /// Deletion of the resource's copies started.
    DeletionStarted => "deletion.started",
    /// A hold was placed.
    HoldPlaced => "hold.placed",
    /// A hold was released.
    HoldReleased => "hold.released",
    /// A hold's review date passed: it stays in force, and someone must
    /// decide whether to release it (reported once per hold).
    HoldReviewDue => "hold.review_due",
    /// A backup copy was registered.
    CopyRegistered => "copy.registered",
    /// A copy is gone.
    CopyDeleted => "copy.deleted",
    /// A backup copy is restricted until it expires.
    CopyRestricted => "copy.restricted",
    /// The purge of an expired restricted copy started.
    CopyPurgeStarted => "copy.purge_started",
    /// A restricted copy was purged.
    CopyPurged => "copy.purged",
    /// An executor call failed; a retry is scheduled.
    CopyFailed => "copy.failed",
    /// Retries are exhausted: the copy waits for an operator.
    CopyStuck => "copy.stuck",
    /// An operator retried stuck copies.
    CopyRetry => "copy.retry",
    /// A restricted copy outlasted its store's `max_restricted`.
    CopyRestrictionOverdue => "copy.restriction_overdue",
    /// The online and cache copies are gone.
    ResourceDeleted => "resource.deleted",
    /// Every copy is gone; the certificate is issued.
    ResourcePurged => "resource.purged",
    /// A notice reached the notifier.
    NoticeSent => "notice.sent",
    /// A notice could not be sent; a retry is scheduled.
    NoticeFailed => "notice.failed",
    /// A notice was deliberately not sent (no notifier, dry run).
    NoticeSkipped => "notice.skipped",
    /// A notice that waited was dropped: its news stopped being true.
    NoticeSuperseded => "notice.superseded",
    /// An operator paused deletions.
    DeletionsPaused => "deletions.paused",
    /// An operator resumed deletions.
    DeletionsResumed => "deletions.resumed",
    /// The mass-deletion guard held a batch.
    GuardTripped => "guard.tripped",
    /// An operator approved (guard and/or clock anomaly).
    GuardApproved => "guard.approved",
    /// The wall clock jumped.
    ClockAnomaly => "clock.anomaly",
    /// A new config was put in force.
    ConfigReloaded => "config.reloaded",
    /// A reload was refused; the old config stays.
    ConfigReloadFailed => "config.reload_failed",
    /// An operator applied a product's policy to its running buffers.
    PolicyApplied => "policy.applied",
    /// A sweep repaired due times.
    SweepRepaired => "sweep.repaired",
    /// A privacy request (erasure or restriction) was received, with its
    /// due date (product-spec §8; privacy policy 5.6.1).
    RequestReceived => "request.received",
    /// A request received unverified was repeated with the requester's
    /// identity verified.
    RequestVerified => "request.verified",
    /// A request was decided: executed, or refused with a ground (privacy
    /// policy 5.6.2, 5.8).
    RequestDecided => "request.decided",
    /// An approved request started executing (after any hold).
    RequestExecuting => "request.executing",
    /// A request awaits a decision and its due date is near
    /// (`privacy.warn_before`).
    RequestDueSoon => "request.due_soon",
    /// A request's due date passed without an answer.
    RequestOverdue => "request.overdue",
    /// A request completed (`partially_completed` while classes are kept
    /// under their legal minimum, `completed` once they go too).
    RequestCompleted => "request.completed",
    /// A restriction in force was lifted (`restriction.lifted`).
    RestrictionLifted => "request.restriction_lifted",
    /// A class of a subject's personal data was scheduled for erasure
    /// (closure or request), with the privacy policy version.
    PersonalScheduled => "personal.scheduled",
    /// The erasure of a class of a subject's personal data started.
    PersonalErasureStarted => "personal.erasure_started",
    /// A personal store deleted a class of a subject's data.
    PersonalErased => "personal.erased",
    /// A personal store anonymised a class of a subject's data.
    PersonalAnonymized => "personal.anonymized",
    /// A personal store restricted a class of a subject's data.
    PersonalRestricted => "personal.restricted",
    /// A personal store lifted a restriction.
    PersonalUnrestricted => "personal.unrestricted",
    /// A personal store's executor failed; retried later.
    PersonalFailed => "personal.failed",
    /// A personal store's executor kept failing: an operator must retry.
    PersonalStuck => "personal.stuck",
    /// An operator retried stuck personal calls.
    PersonalRetry => "personal.retry",
}

impl Serialize for AuditKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditKind;

    #[test]
    fn every_kind_has_one_name_and_parses_back() {
        let mut names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(*k));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditKind::ALL.len(), "two kinds share a name");
        assert_eq!(AuditKind::parse("made.up"), None);
    }

    /// The README lists every kind an operator may meet in the log.
    #[test]
    fn the_readme_names_every_kind() {
        let readme = include_str!("../../README.md");
        let list = readme.split("**Audit record kinds.**").nth(1).expect("the README's list of kinds");
        let list = list.split("\n- ").next().unwrap_or_default();
        for k in AuditKind::ALL {
            assert!(list.contains(&format!("`{}`", k.as_str())), "README does not list {}", k.as_str());
        }
    }
}
