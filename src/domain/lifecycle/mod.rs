//! The resource lifecycle as a pure state machine: no I/O, no clock, no
//! tokio. Inputs are events and `now`; outputs are the new state and a list of
//! [`Effect`]s (audit records to write, executor calls to make) that the
//! engine carries out. [`Resource::next_due`] says when to call again, the way
//! quinn's `poll_timeout` does, so the scheduler never has to know the rules.
//!
//! The model is a set of *facts* that events establish (a term end, an
//! arrears notice, a termination, a release, holds) and the *buffers* those
//! facts start when their time comes. Each cause keeps its own buffer, frozen
//! with the policy version that set it when it starts (domain-rules §5.2).
//! The deletion deadline is the earliest running buffer, pushed back by holds
//! (domain-rules §1.2 exceptions). Because facts record when they happened,
//! not when they arrived, late and out-of-order events give the in-order
//! result: a renewal dated before the term end cancels an expiry buffer that
//! already started; a settlement that arrives before its arrears notice makes
//! the older notice moot.
//!
//! Notices to the tenant (domain-rules §1.3) are kept here too, as pure
//! state: the renewal reminder and deletion warnings fall due with time,
//! buffer starts and completions with transitions, and a pending notice
//! whose news stops being true is dropped. None of it feeds back into a
//! deadline: notices never delay or hasten a deletion.
//!
//! # Layout
//! - this file: the vocabulary (states, copies, buffers, holds, notices,
//!   effects, rules) and the small time helpers;
//! - `events`: applying each event as of its own time;
//! - `deadlines`: buffers, deadlines, starting a deletion, the forecast;
//! - `copies`: each copy's executor steps, retries, backups;
//! - `notices`: notices to the tenant;
//! - `holds`: placing and releasing holds, on a resource or a tenant;
//! - `fixtures` (tests only): the policy, rules and events the unit tests
//!   of each sub-machine share.
//!
//! States (product-spec §6): `active` → `retained` (a buffer running) →
//! `deleting` → `deleted` → `purged`. Once deletion has started nothing goes
//! back: deleted data cannot be recovered (general terms 4.1.6).

use crate::audit::AuditKind;
use crate::domain::event::{Billing, Event, EventBody};
use crate::domain::policy::{Cause, ProductPolicy, StoreClass, TerminationReason};
use crate::domain::vocabulary::Action;
use crate::time::{fmt_rfc3339, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a resource stands (product-spec §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Served; no buffer is running.
    Active,
    /// A buffer is running: data is kept until `delete_after`.
    Retained,
    /// Deletion has started: copies are being deleted.
    Deleting,
    /// Online and cache copies are gone; backups may remain restricted.
    Deleted,
    /// Every copy is gone.
    Purged,
}

impl State {
    /// The state's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Retained => "retained",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Purged => "purged",
        }
    }

    /// True once deletion has started: there is no way back.
    pub fn is_final(self) -> bool {
        matches!(self, State::Deleting | State::Deleted | State::Purged)
    }
}

/// Where one copy of a resource's data stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    /// Holds data; nothing asked of it yet.
    Present,
    /// The intent to delete is recorded; the executor is called (again after
    /// a failure, at `next_attempt_at`) until it reports success.
    Deleting,
    /// A backup copy that cannot go at once: the executor is asked to
    /// restrict it (privacy policy 5.3.3).
    Restricting,
    /// Kept securely, restricted from any processing (no restore, read,
    /// copy or export) until it expires and is purged.
    Restricted,
    /// A restricted copy has expired: the executor is asked to purge it.
    Purging,
    /// The copy is confirmed gone.
    Deleted,
}

impl CopyState {
    /// The executor action this state is waiting on, if any.
    pub fn action(self) -> Option<Action> {
        match self {
            CopyState::Deleting => Some(Action::Delete),
            CopyState::Restricting => Some(Action::Restrict),
            CopyState::Purging => Some(Action::Purge),
            _ => None,
        }
    }
}

/// One copy of a resource's business data in one store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataCopy {
    /// The store's name.
    pub store: String,
    /// The copy's id within the store (the store name for online and cache
    /// stores, which hold one copy per resource).
    pub copy: String,
    /// The store's class when the copy was recorded.
    pub class: StoreClass,
    /// Progress.
    pub state: CopyState,
    /// Executor calls that failed so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the executor is to be called next (while `deleting`).
    #[serde(default)]
    pub next_attempt_at: Option<Timestamp>,
    /// The last failure, for operators (identifiers and exit codes only).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the copy was confirmed gone (or restricted, while restricted).
    #[serde(default)]
    pub done_at: Option<Timestamp>,
    /// When a backup copy expires (from `backup.created`).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The retry limit was reached: no more calls until an operator asks.
    #[serde(default)]
    pub stuck: bool,
    /// Audit sequence number of the record that completed the copy (for the
    /// deletion certificate); set by the engine.
    #[serde(default)]
    pub done_seq: Option<u64>,
    /// How it ended: `deleted`, `restricted` (for now), `purged`, or
    /// `removed_by_backup_system`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// For a restricted backup: when its restriction outlasts the store's
    /// `max_restricted`, counted from when its deletion was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_until: Option<Timestamp>,
    /// `copy.restriction_overdue` was recorded (once per copy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restriction_overdue: bool,
}

impl DataCopy {
    pub(super) fn new(store: &str, copy: &str, class: StoreClass) -> Self {
        DataCopy {
            store: store.to_string(),
            copy: copy.to_string(),
            class,
            state: CopyState::Present,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            done_at: None,
            expires_at: None,
            stuck: false,
            done_seq: None,
            outcome: None,
            restricted_until: None,
            restriction_overdue: false,
        }
    }

    /// Asks the executor for `state`'s action from `at` on.
    pub(super) fn request(&mut self, state: CopyState, at: Timestamp) {
        self.state = state;
        self.next_attempt_at = Some(at);
        self.attempts = 0;
        self.stuck = false;
    }
}

/// A running buffer: business data kept until `delete_after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffer {
    /// Why it runs.
    pub cause: Cause,
    /// Termination reason, for termination buffers.
    pub reason: Option<TerminationReason>,
    /// When it started (the cause's own time, not when it was noticed).
    pub started_at: Timestamp,
    /// Nothing is deleted before this.
    pub delete_after: Timestamp,
    /// The policy version that set `delete_after`.
    pub policy_version: String,
    /// Set when the event that caused this buffer arrived so late that its
    /// deadline had (nearly) passed: `delete_after` was lifted to this, so
    /// the deletion runs no sooner than `safety.late_event_floor` after the
    /// daemon learned of it (it shows in the forecast and can be held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_floor: Option<Timestamp>,
}

/// Unpaid fees on the resource (general terms 2.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrears {
    /// When the arrears started (the event's `at`).
    pub started_at: Timestamp,
    /// Overdue amount, as given.
    pub amount: Option<Decimal>,
    /// Its currency.
    pub currency: Option<String>,
    /// The buffer, once `arrears_grace` has passed.
    pub buffer: Option<Buffer>,
    /// When the grace ends and the buffer starts, fixed by the policy in
    /// force when the arrears were reported, so a reload that shortens
    /// `arrears_grace` does not bring the deletion closer (issue 5, reload).
    /// Absent in records written before it existed: the policy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ends_at: Option<Timestamp>,
    /// See [`Buffer::late_floor`]: set when the notice (or one dated
    /// earlier) arrived late enough to have made the deletion due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_floor: Option<Timestamp>,
}

/// An early termination (general terms 7.4, 7.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// When it was terminated.
    pub at: Timestamp,
    /// Why.
    pub reason: TerminationReason,
    /// The buffer, once `at` has passed.
    pub buffer: Option<Buffer>,
    /// See [`Buffer::late_floor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_floor: Option<Timestamp>,
}

/// A hold: while any covers a resource, nothing of it is deleted
/// (general terms 4.1.5; privacy policy 5.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its id.
    pub hold_id: String,
    /// Who demands it.
    pub authority: String,
    /// Why.
    pub reason: String,
    /// True when placed on the whole tenant.
    pub tenant_wide: bool,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// When someone should decide whether it is still needed (`review_at`
    /// of `hold.placed`). Passing it never lifts the hold (general terms
    /// 4.1.5: only a release does); it is reported as due for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_at: Option<Timestamp>,
    /// When the engine reported the review as due (`hold.review_due`), so
    /// it is reported once. Kept on the hold's own record: on a resource
    /// hold, or on the tenant's record for a tenant-wide one (its copies on
    /// the tenant's resources never carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_reported_at: Option<Timestamp>,
}

/// What a notice to the tenant is about (domain-rules §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Each `renewal_reminder` offset before the renewal cutoff
    /// (`renewal_cutoff`, 7 days before the term end: general terms
    /// 2.3.1.3; trial terms 3.2.2), so the tenant can renew in time.
    RenewalReminder,
    /// A buffer started: the data is kept until the deletion date it names.
    BufferStarted,
    /// One of the product's `notices` offsets before irreversible deletion.
    DeletionWarning,
    /// The online and cache copies are deleted (backups are restricted or gone).
    DeletionCompleted,
}

impl NoticeKind {
    /// The snake_case name used in dedupe keys, audit records and the
    /// notifier's payload.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::RenewalReminder => "renewal_reminder",
            NoticeKind::BufferStarted => "buffer_started",
            NoticeKind::DeletionWarning => "deletion_warning",
            NoticeKind::DeletionCompleted => "deletion_completed",
        }
    }
}

/// A notice to the tenant, kept with its resource so it is sent at least
/// once: it is stored before the notifier is called, and marked sent only
/// after. It never changes a deadline (issue 5: a notice that cannot be
/// sent never delays or hastens a deletion).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Dedupe key, unique across all resources and stable across retries
    /// and restarts: `{resource}:{kind}:{what it is about}`.
    pub key: String,
    /// What it is about.
    pub kind: NoticeKind,
    /// When it fell due.
    pub due_at: Timestamp,
    /// The date it announces: the term end for a reminder, the deletion
    /// date for a buffer start or a warning.
    pub date: Option<Timestamp>,
    /// The cause of the deletion it announces.
    pub cause: Option<Cause>,
    /// For a warning: the configured offset before deletion, in seconds.
    pub offset_secs: Option<u64>,
    /// When the notifier confirmed it (None while pending).
    pub sent_at: Option<Timestamp>,
    /// Failed sends so far.
    pub attempts: u32,
    /// When to try again after a failure.
    pub next_attempt_at: Option<Timestamp>,
    /// True when it was dropped unsent because what it announced changed
    /// while it waited (a renewal, a hold, a new date): `sent_at` then
    /// holds when it was dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

impl Notice {
    /// When the notifier should (next) be called, if the notice is pending.
    pub fn send_due(&self) -> Option<Timestamp> {
        match self.sent_at {
            Some(_) => None,
            None => Some(self.next_attempt_at.unwrap_or(self.due_at)),
        }
    }
}

/// One line of a resource's readable history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it happened (event time for events, due time for deadlines).
    pub at: Timestamp,
    /// What happened, as an audit kind (`resource.created`, `buffer.started`..).
    pub what: String,
    /// A short human sentence.
    pub detail: String,
}

/// A tracked resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Unique across tenants.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// Names the product policy.
    pub product: String,
    /// prepaid or postpaid.
    pub billing: Billing,
    /// When it was created (the creation event's `at`).
    pub created_at: Timestamp,
    /// End of the prepaid term.
    pub term_end: Option<Timestamp>,
    /// The expiry buffer, once the term has ended.
    pub expiry: Option<Buffer>,
    /// See [`Buffer::late_floor`]: set when the resource was reported with
    /// a term that had already ended long enough ago to be due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_late_floor: Option<Timestamp>,
    /// Unpaid fees.
    pub arrears: Option<Arrears>,
    /// Latest settlement: an arrears notice dated before it is moot.
    pub arrears_settled_at: Option<Timestamp>,
    /// The latest settlement settled a notice (one it found, or one dated
    /// at its instant that arrived after it): a further notice dated at
    /// that same instant is new arrears, not the one it settled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settlement_spent: bool,
    /// An early termination.
    pub termination: Option<Termination>,
    /// Latest reinstatement: a termination dated before it is moot.
    pub reinstated_at: Option<Timestamp>,
    /// As `settlement_spent`, for the latest reinstatement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reinstatement_spent: bool,
    /// The tenant's release (no buffer).
    pub release: Option<Buffer>,
    /// Holds covering it.
    pub holds: Vec<Hold>,
    /// Released hold ids with their release time: a `hold.placed` dated
    /// before its release (arriving late) does not revive the hold.
    pub released_holds: Vec<(String, Timestamp)>,
    /// After the last hold is released, nothing is deleted before this
    /// (`safety.after_hold_release`), so people can react.
    pub not_before: Option<Timestamp>,
    /// Where it stands.
    pub state: State,
    /// The buffer that decides the deletion (the earliest running one),
    /// frozen when deletion starts.
    pub deciding: Option<Buffer>,
    /// When deletion started.
    pub deletion_started_at: Option<Timestamp>,
    /// The deletion was started by an operator's approval of a batch the
    /// mass-deletion guard held: it is not counted in the guard's windows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard_approved: bool,
    /// Every known copy of the data.
    pub copies: Vec<DataCopy>,
    /// What happened, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Notices to the tenant, pending and sent (the sent ones are the
    /// dedupe record). Absent in records written before notices existed.
    #[serde(default)]
    pub notices: Vec<Notice>,
}

/// What the engine must do after a transition.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Write an audit record of this kind about the resource.
    Record {
        /// Audit kind (product-spec §7).
        kind: AuditKind,
        /// Identifiers, times and policy facts only: never business data.
        data: Value,
    },
    /// Call the store's executor for one copy (its intent is already in the
    /// returned state, which must be durable before the call).
    Dispatch {
        /// Store name.
        store: String,
        /// Copy id.
        copy: String,
        /// What to ask.
        action: Action,
    },
}

/// An event the resource's state forbids (answered `rejected`, audited).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// What is wrong, for the sender.
    pub message: String,
    /// True when a later event could make the same event valid (an unknown
    /// resource that is yet to be created): the event id is then not
    /// remembered, so the sender may retry it.
    pub retryable: bool,
}

impl Rejection {
    /// A final refusal.
    pub fn new(message: impl Into<String>) -> Self {
        Rejection { message: message.into(), retryable: false }
    }
}

/// What the pure functions need from the config besides the product policy.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `safety.after_hold_release`.
    pub after_hold_release: chrono::Duration,
    /// False in dry run, while paused, after a clock anomaly or a tripped
    /// guard: no deletion starts.
    pub may_start: bool,
    /// False in dry run and while paused: no executor is called. Deletions
    /// already started (legitimately) go on under the guard and the clock
    /// check, which only stop new ones.
    pub may_dispatch: bool,
    /// Failed calls of one copy before it is `stuck` and waits for an operator.
    pub max_attempts: u32,
    /// `safety.late_event_floor`: a deletion that a late event makes due
    /// runs no sooner than this after the event was applied (release
    /// excepted: the tenant's own instruction, general terms 4.1.4).
    pub late_event_floor: chrono::Duration,
}

/// Delay before retrying a failed executor call: 1 min doubling to 1 h.
pub fn retry_delay(failures: u32) -> chrono::Duration {
    let secs = 60u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    chrono::Duration::seconds(secs.min(3_600) as i64)
}

/// The deletion a resource is heading for, as the forecast shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forecast {
    /// The cause of the earliest deletion.
    pub cause: Cause,
    /// Termination reason, if any.
    pub reason: Option<TerminationReason>,
    /// When it would run (after holds' `not_before`).
    pub deadline: Timestamp,
    /// The policy version (of the running buffer, or in force now for a
    /// buffer yet to start).
    pub policy_version: String,
    /// False when the buffer is already running; true when it is projected
    /// from a future term end or arrears grace.
    pub projected: bool,
}

pub(super) fn buffer(
    cause: Cause,
    reason: Option<TerminationReason>,
    start: Timestamp,
    late_floor: Option<Timestamp>,
    policy: &ProductPolicy,
) -> Buffer {
    let length = policy.buffer.for_cause(cause, reason);
    let anchored = later(start, length.to_chrono());
    Buffer {
        cause,
        reason,
        started_at: start,
        delete_after: late_floor.map_or(anchored, |f| f.max(anchored)),
        policy_version: policy.version.clone(),
        late_floor: late_floor.filter(|f| *f > anchored),
    }
}

/// The late-event floor for a cause whose buffer (of `length`, starting at
/// `start`) is learned of at `now`: `Some(floor)` when the event came so
/// late that the deadline anchored at its own time would fall before
/// `now + min(late_event_floor, length)`. Event-time semantics stay (the
/// buffer is still anchored at `start`); only the deletion waits, so it
/// shows in the forecast and can be held before it runs. A zero buffer
/// (a violation, by the operator's decision) stays immediate.
pub(super) fn late_floor(
    start: Timestamp,
    length: crate::duration::Dur,
    now: Timestamp,
    rules: Rules,
) -> Option<Timestamp> {
    let length = length.to_chrono();
    let floor = later(now, rules.late_event_floor.min(length));
    (later(start, length) < floor).then_some(floor)
}

/// `t + d`, saturating at the end of time rather than panicking: an
/// unreachable deadline fails closed (nothing is deleted).
pub fn later(t: Timestamp, d: chrono::Duration) -> Timestamp {
    t.checked_add_signed(d).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `t - d`, saturating at the beginning of time rather than panicking.
pub fn earlier(t: Timestamp, d: chrono::Duration) -> Timestamp {
    t.checked_sub_signed(d).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

mod copies;
mod deadlines;
mod events;
#[cfg(test)]
pub(crate) mod fixtures;
mod holds;
mod notices;

pub use holds::TenantHolds;
#[allow(unused_imports)]
use {copies::*, events::*, holds::*};

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    /// General terms 4.1.6: deleted data cannot be recovered, so once
    /// deletion has started there is no way back: an event that would serve
    /// the resource again is refused, naming the clause.
    #[test]
    fn once_deletion_started_nothing_goes_back() {
        let finals: Vec<_> = [State::Active, State::Retained, State::Deleting, State::Deleted, State::Purged]
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, [State::Deleting, State::Deleted, State::Purged]);

        let mut r = prepaid(day(30));
        r.tick(day(45));
        assert_eq!(r.state, State::Deleting);
        let renewal = on_r(day(46), EventBody::Renewed { term_end: day(400) });
        let refused = r.apply(&renewal, &policy(), rules(), day(46)).unwrap_err();
        assert!(refused.message.contains("general terms 4.1.6"), "{refused:?}");
        assert_eq!(r.state, State::Deleting);
    }

    /// Executor retries back off from one minute, doubling, to at most an
    /// hour, so a store that is down is not hammered and one that comes
    /// back is called again within the hour.
    #[test]
    fn retries_back_off_from_a_minute_to_an_hour() {
        let delays: Vec<i64> = [1, 2, 3, 6, 7, 8, 1000].into_iter().map(|n| retry_delay(n).num_seconds()).collect();
        assert_eq!(delays, [60, 120, 240, 1920, 3600, 3600, 3600]);
    }

    /// A deadline that cannot be represented fails closed: it saturates at
    /// the end of time (nothing is deleted) rather than wrapping or panicking.
    #[test]
    fn an_unreachable_deadline_saturates_at_the_end_of_time() {
        let end = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        assert_eq!(later(end, chrono::Duration::days(1)), end);
        assert_eq!(
            earlier(chrono::DateTime::<chrono::Utc>::MIN_UTC, chrono::Duration::days(1)),
            chrono::DateTime::<chrono::Utc>::MIN_UTC
        );
        assert_eq!(later(day(1), chrono::Duration::days(1)), day(2));
    }
}
