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
//! States (product-spec §6): `active` → `retained` (a buffer running) →
//! `deleting` → `deleted` → `purged`. Once deletion has started nothing goes
//! back: deleted data cannot be recovered (general terms 4.1.6).

use crate::audit::AuditKind;
use crate::event::{Billing, Event, EventBody};
use crate::executor::Action;
use crate::policy::{Cause, ProductPolicy, StoreClass, TerminationReason};
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
    fn new(store: &str, copy: &str, class: StoreClass) -> Self {
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
    fn request(&mut self, state: CopyState, at: Timestamp) {
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

fn buffer(
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
fn late_floor(start: Timestamp, length: crate::duration::Dur, now: Timestamp, rules: Rules) -> Option<Timestamp> {
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

impl Resource {
    /// Starts tracking a resource from its `resource.created` event (applied
    /// at `now`); holds already placed on its tenant cover it from the start.
    /// A term end already long past gets the late-event floor.
    pub fn create(
        ev: &Event,
        policy: &ProductPolicy,
        tenant_holds: &[Hold],
        now: Timestamp,
        rules: Rules,
    ) -> Result<Resource, Rejection> {
        let (EventBody::Created { product, billing, term_end }, Some(id)) = (&ev.body, &ev.resource) else {
            return Err(Rejection {
                message: format!("unknown resource {:?}", ev.resource.as_deref().unwrap_or("")),
                retryable: true,
            });
        };
        let copies = policy
            .stores
            .iter()
            .filter(|s| s.class != StoreClass::Backup)
            .map(|s| DataCopy::new(&s.name, &s.name, s.class))
            .collect();
        let mut r = Resource {
            id: id.clone(),
            tenant: ev.tenant.clone(),
            product: product.clone(),
            billing: *billing,
            created_at: ev.at,
            term_end: *term_end,
            expiry: None,
            expiry_late_floor: term_end.and_then(|t| late_floor(t, policy.buffer.expiry, now, rules)),
            arrears: None,
            arrears_settled_at: None,
            settlement_spent: false,
            termination: None,
            reinstated_at: None,
            reinstatement_spent: false,
            release: None,
            holds: tenant_holds.to_vec(),
            released_holds: Vec::new(),
            not_before: None,
            state: State::Active,
            deciding: None,
            deletion_started_at: None,
            guard_approved: false,
            copies,
            history: Vec::new(),
            notices: Vec::new(),
        };
        let detail = match term_end {
            Some(t) => format!("created ({product}, prepaid, term ends {})", fmt_rfc3339(*t)),
            None => format!("created ({product}, postpaid)"),
        };
        r.log(ev.at, "resource.created", detail);
        Ok(r)
    }

    /// Applies an event about this resource (or its tenant), as of the
    /// event's own time (`now` is when it is applied). Call
    /// [`Resource::advance`] afterwards. All or nothing: on `Err` the
    /// resource is unchanged.
    pub fn apply(
        &mut self,
        ev: &Event,
        policy: &ProductPolicy,
        rules: Rules,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejection> {
        let before = self.clone();
        let result = self.apply_inner(ev, policy, rules, now);
        if result.is_err() {
            *self = before;
        }
        result
    }

    fn apply_inner(
        &mut self,
        ev: &Event,
        policy: &ProductPolicy,
        rules: Rules,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejection> {
        if ev.tenant != self.tenant {
            return Err(Rejection::new(format!("resource {:?} belongs to another tenant", self.id)));
        }
        let mut fx = Vec::new();
        let at = ev.at;
        match &ev.body {
            EventBody::Created { .. } => {
                return Err(Rejection::new(format!("resource {:?} already exists", self.id)));
            }
            EventBody::Renewed { term_end } => {
                if self.billing == Billing::Postpaid {
                    return Err(Rejection::new("a postpaid resource has no term to renew"));
                }
                self.refuse_if_final("renewal")?;
                // Renewals may arrive out of order: the latest term end wins.
                let new = self.term_end.map_or(*term_end, |old| old.max(*term_end));
                self.term_end = Some(new);
                self.log(at, "resource.renewed", format!("renewed until {}", fmt_rfc3339(new)));
                // general terms 7.2: the renewal cancels an expiry buffer that
                // began at an earlier term end (domain-rules §1.2).
                if let Some(b) = self.expiry.take_if(|b| new > b.started_at) {
                    self.cancelled(at, &b, "renewed", &mut fx);
                }
            }
            EventBody::Terminated { reason } => {
                self.refuse_if_final("termination")?;
                if overtaken(self.reinstated_at, &mut self.reinstatement_spent, at) {
                    self.log(at, "resource.terminated", "termination dated before a later reinstatement: moot".into());
                } else if let Some(t) = &self.termination {
                    return Err(Rejection::new(format!(
                        "resource {:?} is already terminated ({} at {})",
                        self.id,
                        t.reason.as_str(),
                        fmt_rfc3339(t.at)
                    )));
                } else {
                    let length = policy.buffer.for_cause(Cause::Termination, Some(*reason));
                    let late_floor = late_floor(at, length, now, rules);
                    self.termination = Some(Termination { at, reason: *reason, buffer: None, late_floor });
                    self.log(at, "resource.terminated", format!("terminated: {}", reason.as_str()));
                }
            }
            EventBody::Reinstated => {
                self.refuse_if_final("reinstatement")?;
                let previous = self.reinstated_at;
                self.reinstated_at = Some(previous.map_or(at, |r| r.max(at)));
                let withdrawn = self.termination.as_ref().is_some_and(|t| t.at <= at);
                spend(previous, &mut self.reinstatement_spent, at, withdrawn);
                match self.termination.take_if(|t| t.at <= at) {
                    Some(t) => {
                        if let Some(b) = &t.buffer {
                            self.cancelled(at, b, "termination withdrawn by agreement", &mut fx);
                        }
                        self.log(at, "resource.reinstated", "termination withdrawn".into());
                    }
                    None if self.termination.is_some() => {
                        self.log(at, "resource.reinstated", "reinstatement dated before the termination: moot".into());
                    }
                    // It may have overtaken its termination: recorded, so a
                    // termination dated before it is moot when it arrives.
                    None => self.log(at, "resource.reinstated", "not terminated: recorded".into()),
                }
            }
            EventBody::Released => {
                self.refuse_if_final("release")?;
                if self.release.is_none() {
                    // general terms 4.1.4: the tenant's instruction, no buffer.
                    let b = buffer(Cause::Release, None, at, None, policy);
                    self.scheduled(&b, policy, &mut fx);
                    self.release = Some(b);
                    self.log(at, "resource.released", "released by the tenant: delete without buffer".into());
                }
            }
            EventBody::ArrearsStarted { amount, currency } => {
                self.refuse_if_final("arrears notice")?;
                if overtaken(self.arrears_settled_at, &mut self.settlement_spent, at) {
                    self.log(at, "arrears.started", "arrears dated before a later settlement: moot".into());
                } else {
                    match &mut self.arrears {
                        // A repeated notice updates the amount; the earliest start stands.
                        Some(a) => {
                            // An earlier-dated notice moves the grace end by
                            // as much; the grace length stays the one fixed
                            // when the arrears were first reported (a reload
                            // since must not shorten it).
                            let start = a.started_at.min(at);
                            let moved = a.started_at - start;
                            let known = a.grace_ends_at.map(|g| {
                                let anchored = later(g, policy.buffer.arrears.to_chrono());
                                a.late_floor.map_or(anchored, |f| f.max(anchored))
                            });
                            a.grace_ends_at = Some(match a.grace_ends_at {
                                Some(g) => g.checked_sub_signed(moved).unwrap_or(g),
                                None => later(start, policy.arrears_grace.to_chrono()),
                            });
                            if moved > chrono::Duration::zero() {
                                // Learned now that the arrears began earlier:
                                // the floor guards against the earlier date,
                                // but never pushes the deletion past the date
                                // already known.
                                let grace_end = a.grace_ends_at.unwrap_or(start);
                                let floor = late_floor(grace_end, policy.buffer.arrears, now, rules);
                                a.late_floor = match (floor, known) {
                                    (Some(f), Some(k)) => Some(f.min(k)),
                                    (f, _) => f,
                                };
                            }
                            a.started_at = start;
                            a.amount = amount.or(a.amount);
                            a.currency = currency.clone().or(a.currency.take());
                        }
                        None => {
                            let grace_end = later(at, policy.arrears_grace.to_chrono());
                            self.arrears = Some(Arrears {
                                started_at: at,
                                amount: *amount,
                                currency: currency.clone(),
                                buffer: None,
                                grace_ends_at: Some(grace_end),
                                late_floor: late_floor(grace_end, policy.buffer.arrears, now, rules),
                            })
                        }
                    }
                    self.log(at, "arrears.started", "fees in arrears".into());
                }
            }
            EventBody::ArrearsSettled => {
                self.refuse_if_final("settlement")?;
                let previous = self.arrears_settled_at;
                self.arrears_settled_at = Some(previous.map_or(at, |s| s.max(at)));
                let settles = self.arrears.as_ref().is_some_and(|a| a.started_at <= at);
                spend(previous, &mut self.settlement_spent, at, settles);
                if let Some(a) = self.arrears.take_if(|a| a.started_at <= at) {
                    if let Some(b) = &a.buffer {
                        self.cancelled(at, b, "arrears settled", &mut fx);
                    }
                }
                self.log(at, "arrears.settled", "arrears settled".into());
            }
            EventBody::BackupCreated { .. } | EventBody::BackupDeleted { .. } => {
                self.backup_event(ev, policy, &mut fx)?;
            }
            EventBody::HoldPlaced { hold_id, authority, .. } => {
                let scope = format!("{:?}", self.id);
                if place_hold(&mut self.holds, &self.released_holds, ev, &scope)? {
                    let tenant_wide = ev.resource.is_none();
                    fx.push(Effect::Record {
                        kind: AuditKind::HoldPlaced,
                        data: json!({"hold_id": hold_id, "scope": if tenant_wide { "tenant" } else { "resource" }}),
                    });
                    self.log(at, "hold.placed", format!("hold {hold_id} placed by {authority}"));
                } else {
                    self.log(at, "hold.placed", format!("hold {hold_id} dated before its release: moot"));
                }
            }
            EventBody::HoldReleased { hold_id } => {
                let scope = format!("{:?}", self.id);
                release_hold(&mut self.holds, &mut self.released_holds, hold_id, at, &scope)?;
                let mut data = json!({"hold_id": hold_id, "holds_left": self.holds.len()});
                // safety.after_hold_release: a deadline that passed under
                // the hold runs no sooner than this after the last release,
                // so people can react. The window counts from when the hold
                // is actually lifted (a release dated in the past must not
                // delete at once), so it can only delay a deletion.
                let lifted = at.max(now);
                if self.holds.is_empty() && self.deciding.as_ref().is_some_and(|b| b.delete_after <= lifted) {
                    let nb = later(lifted, rules.after_hold_release);
                    self.not_before = Some(self.not_before.map_or(nb, |old| old.max(nb)));
                    data["not_before"] = json!(fmt_rfc3339(nb));
                }
                fx.push(Effect::Record { kind: AuditKind::HoldReleased, data });
                self.log(at, "hold.released", format!("hold {hold_id} released"));
            }
        }
        self.refresh();
        // A buffer this event cancelled may start again at once (a late
        // renewal whose new term end has also passed): the wait after a
        // hold release then still stands.
        if !self.pending_starts(policy).iter().any(|(_, t)| *t <= now) {
            self.forget_not_before_if_active();
        }
        Ok(fx)
    }

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

    /// Records, once per copy, a restricted business backup kept past its
    /// store's `max_restricted` (domain-rules §2: a bounded exception): an
    /// operator must act (the backup system cannot delete it, or its expiry
    /// is set too far out); nothing is deleted by this.
    fn restrictions_overdue(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
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

    /// Drops the pending notices whose news is no longer true, so a notice
    /// that waited (the notifier was down) never tells a tenant who renewed
    /// that their data will be deleted, or names a date that moved: a
    /// reminder for a term end that changed or passed into a buffer; a
    /// warning for a date that moved, a hold, or a deletion that started or
    /// was cancelled; a buffer start whose buffer is no longer running. A
    /// buffer start whose deletion date moved is sent with the new date. A
    /// reminder whose renewal cutoff passed while it waited would ask for
    /// a payment that is already late: dropped too.
    fn supersede_stale_notices(
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
    fn backup_event(&mut self, ev: &Event, policy: &ProductPolicy, fx: &mut Vec<Effect>) -> Result<(), Rejection> {
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
    /// it no closer than `now + min_notice`, and never before the deadline
    /// it had. Once deletion has started nothing moves.
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
    fn deletion_due(&self) -> Option<Timestamp> {
        let b = self.deciding.as_ref()?;
        Some(self.not_before.map_or(b.delete_after, |nb| nb.max(b.delete_after)))
    }

    fn running_buffers(&self) -> impl Iterator<Item = &Buffer> {
        self.expiry
            .iter()
            .chain(self.arrears.as_ref().and_then(|a| a.buffer.as_ref()))
            .chain(self.termination.as_ref().and_then(|t| t.buffer.as_ref()))
            .chain(self.release.iter())
    }

    /// The late-event floor recorded with a cause, if its event came late.
    fn late_floor_of(&self, cause: Cause) -> Option<Timestamp> {
        match cause {
            Cause::Expiry => self.expiry_late_floor,
            Cause::Arrears => self.arrears.as_ref().and_then(|a| a.late_floor),
            Cause::Termination => self.termination.as_ref().and_then(|t| t.late_floor),
            Cause::Release => None,
        }
    }

    /// Buffers whose cause is known but whose start time is still ahead.
    fn pending_starts(&self, policy: &ProductPolicy) -> Vec<(Cause, Timestamp)> {
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
    fn start_due_buffers(
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

    /// Queues a notice unless one with the same key exists (sent or
    /// pending): the key is the dedupe record.
    fn queue_notice(
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
    fn notice_times(&self, policy: &ProductPolicy) -> Vec<(String, NoticeKind, Timestamp, Timestamp, Option<u64>)> {
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
    fn time_notices(&mut self, policy: &ProductPolicy, now: Timestamp) {
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
    fn superseded(&self, kind: NoticeKind, at: Timestamp, date: Timestamp) -> bool {
        self.notices.iter().any(|n| n.kind == kind && n.date == Some(date) && n.due_at > at)
    }

    /// The earliest time a notice needs attention: a pending one's (re)send,
    /// or a time-driven one yet to fall due.
    fn notice_due(&self, policy: Option<&ProductPolicy>) -> Option<Timestamp> {
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

    /// Re-derives `state` and the deciding buffer from the running buffers.
    fn refresh(&mut self) {
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
    fn forget_not_before_if_active(&mut self) {
        if self.deciding.is_none() {
            self.not_before = None;
        }
    }

    fn refuse_if_final(&self, what: &str) -> Result<(), Rejection> {
        if self.state.is_final() {
            return Err(Rejection::new(format!(
                "{what} refused: resource {:?} is {}; deleted data cannot be restored (general terms 4.1.6)",
                self.id,
                self.state.as_str()
            )));
        }
        Ok(())
    }

    fn scheduled(&mut self, b: &Buffer, policy: &ProductPolicy, fx: &mut Vec<Effect>) {
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

    fn cancelled(&mut self, at: Timestamp, b: &Buffer, why: &str, fx: &mut Vec<Effect>) {
        fx.push(Effect::Record {
            kind: AuditKind::DeletionCancelled,
            data: json!({"cause": b.cause, "delete_after": fmt_rfc3339(b.delete_after), "why": why}),
        });
        self.log(at, "deletion.cancelled", format!("{} deletion cancelled: {why}", b.cause.as_str()));
    }

    /// Records the intent to delete every online and cache copy. The returned
    /// state must be durable before any executor is called.
    fn start_deletion(&mut self, policy: &ProductPolicy, now: Timestamp, fx: &mut Vec<Effect>) {
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

    fn complete_if_done(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
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

    fn log(&mut self, at: Timestamp, what: &str, detail: String) {
        self.history.push(HistoryEntry { at, what: what.to_string(), detail });
    }
}

/// Asks for a copy's first step (see [`first_step`]) from `now` on; a copy
/// to be restricted gets the date its restriction may last until.
fn begin(c: &mut DataCopy, policy: &ProductPolicy, now: Timestamp) {
    let first = first_step(c, policy, now);
    if first == CopyState::Restricting {
        let max = policy.store(&c.store).and_then(|s| s.max_restricted);
        c.restricted_until = max.map(|m| later(now, m.to_chrono()));
    }
    c.request(first, now);
}

/// Whether a cause dated `at` is moot because a later (or equal-time)
/// cancellation already came: a settlement for arrears, a reinstatement
/// for a termination. Dated before it: moot. Dated at its very instant:
/// the events are ordered by arrival. If the cancellation found nothing
/// to cancel, it overtook this event (moot, and the cancellation is now
/// spent); if it already cancelled something, this one arrived after it
/// and stands (issue 9: arrears, settlement, arrears again at one instant
/// must not leave the resource active for ever).
fn overtaken(cancelled_at: Option<Timestamp>, spent: &mut bool, at: Timestamp) -> bool {
    match cancelled_at {
        Some(c) if at < c => true,
        Some(c) if at == c && !*spent => {
            *spent = true;
            true
        }
        _ => false,
    }
}

/// Records whether a cancellation dated `at` (the latest so far, or equal
/// to it) cancelled something, for [`overtaken`].
fn spend(previous: Option<Timestamp>, spent: &mut bool, at: Timestamp, cancels: bool) {
    match previous {
        Some(p) if at < p => {}
        Some(p) if at == p => *spent |= cancels,
        _ => *spent = cancels,
    }
}

/// The first executor step for a copy when its resource's deletion starts:
/// online and cache copies and `purge = "immediate"` backups are deleted; a
/// `purge = "at_expiry"` backup is restricted first, or purged at once if it
/// has already expired (privacy policy 5.3.3).
fn first_step(c: &DataCopy, policy: &ProductPolicy, now: Timestamp) -> CopyState {
    let at_expiry = policy.store(&c.store).is_some_and(|s| s.purge == crate::policy::PurgeMode::AtExpiry);
    match (c.class, at_expiry) {
        (StoreClass::Backup, true) if c.expires_at.is_some_and(|t| t <= now) => CopyState::Purging,
        (StoreClass::Backup, true) => CopyState::Restricting,
        _ => CopyState::Deleting,
    }
}

/// Deterministic jitter (0 to 25 % of the retry delay, whole seconds) from the copy's
/// identity, so retries of many copies spread out without a random source
/// in the pure lifecycle.
fn jitter(resource: &str, store: &str, copy: &str, attempt: u32) -> chrono::Duration {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{resource}\n{store}\n{copy}\n{attempt}").as_bytes());
    let fraction = u16::from_be_bytes([h[0], h[1]]) as i64; // 0..65535
    chrono::Duration::seconds(retry_delay(attempt).num_seconds() * fraction / (4 * 65_536))
}

/// Places the hold of a `hold.placed` event on `holds` (of a resource or a
/// tenant, named by `scope` in messages). Ok(false) when a release of the
/// same hold dated after the placement is already known: the late
/// placement is moot. Err for a hold id already in force.
fn place_hold(
    holds: &mut Vec<Hold>,
    released: &[(String, Timestamp)],
    ev: &Event,
    scope: &str,
) -> Result<bool, Rejection> {
    let EventBody::HoldPlaced { hold_id, authority, reason } = &ev.body else {
        return Ok(false);
    };
    // A placement dated at its release's instant that arrives after it is
    // a new placement (arrival order breaks ties; the safe side, too).
    if released.iter().any(|(id, rel)| id == hold_id && ev.at < *rel) {
        return Ok(false);
    }
    if holds.iter().any(|h| &h.hold_id == hold_id) {
        return Err(Rejection::new(format!("hold {hold_id:?} is already placed on {scope}")));
    }
    holds.push(Hold {
        hold_id: hold_id.clone(),
        authority: authority.clone(),
        reason: reason.clone(),
        tenant_wide: ev.resource.is_none(),
        placed_at: ev.at,
    });
    Ok(true)
}

/// Lifts a hold and remembers when (so a late placement stays moot). A hold
/// not in force is a retryable rejection: its placement may yet arrive.
fn release_hold(
    holds: &mut Vec<Hold>,
    released: &mut Vec<(String, Timestamp)>,
    hold_id: &str,
    at: Timestamp,
    scope: &str,
) -> Result<(), Rejection> {
    let Some(pos) = holds.iter().position(|h| h.hold_id == hold_id) else {
        return Err(Rejection { message: format!("hold {hold_id:?} is not placed on {scope}"), retryable: true });
    };
    holds.remove(pos);
    released.push((hold_id.to_string(), at));
    Ok(())
}

/// Holds placed on a whole tenant, kept so that resources created later are
/// covered too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantHolds {
    /// Holds in force on the tenant.
    pub holds: Vec<Hold>,
    /// Released tenant hold ids and when.
    pub released: Vec<(String, Timestamp)>,
}

impl TenantHolds {
    /// Applies a tenant-wide `hold.placed` or `hold.released`; Err for an
    /// event that the tenant's holds forbid.
    pub fn apply(&mut self, ev: &Event) -> Result<(), Rejection> {
        match &ev.body {
            EventBody::HoldPlaced { .. } => {
                place_hold(&mut self.holds, &self.released, ev, &format!("tenant {:?}", ev.tenant)).map(|_| ())
            }
            EventBody::HoldReleased { hold_id } => {
                release_hold(&mut self.holds, &mut self.released, hold_id, ev.at, &format!("tenant {:?}", ev.tenant))
            }
            _ => Ok(()),
        }
    }
}
