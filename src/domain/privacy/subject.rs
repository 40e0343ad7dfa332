//! A subject's record: its classes of personal data, each copy of them in
//! each personal store, and the steps time drives (an erasure at its date,
//! a failed executor call retried). Requests live on the same record
//! (`request.rs`): everything about one person is decided together.
//!
//! The rules, as the pure functions below enforce them:
//! - nothing is erased before its class's date, nor before its
//!   `legal_minimum` ends (privacy policy 7.2), nor while a hold covers the
//!   tenant, nor sooner than `safety.after_hold_release` after the last
//!   release when the date passed under the hold (the same exceptions as
//!   business data, domain-rules §1.2 and privacy policy 5.8);
//! - closing the account schedules every class at `at + after_closure`
//!   (privacy policy 5.5.2), never sooner than `safety.late_event_floor`
//!   after the daemon learned of it;
//! - the intent is recorded before an executor is called, and a call is
//!   retried with backoff until `daemon.max_attempts`, then `stuck` until an
//!   operator retries it (engineering-notes habit 1);
//! - restricted data stays restricted until the restriction is lifted or
//!   the data erased (international privacy policy; privacy policy 5.3.3).

use super::{Erasure, PersonalAction, PrivacyPolicy, Request, RequestState};
use crate::audit::AuditKind;
use crate::domain::lifecycle::{later, retry_delay, Rules, TenantHolds};
use crate::time::{fmt_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One person the provider holds personal data about (product-spec §8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The account the person belongs to.
    pub tenant: String,
    /// Unique within the tenant; the tenant id itself for the account
    /// holder.
    pub id: String,
    /// When `subject.created` registered it (`None` for the account holder,
    /// known from the tenant itself).
    #[serde(default)]
    pub registered_at: Option<Timestamp>,
    /// When the account was closed (`account.closed`), if it was.
    #[serde(default)]
    pub closed_at: Option<Timestamp>,
    /// Each class of the policy, as far as anything was asked of it.
    #[serde(default)]
    pub classes: Vec<ClassRecord>,
    /// The restriction request in force, if any.
    #[serde(default)]
    pub restricted_by: Option<String>,
    /// Every request about this person, oldest first.
    #[serde(default)]
    pub requests: Vec<Request>,
}

/// Why a class's erasure is scheduled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The account was closed (privacy policy 5.5.2).
    Closure,
    /// An erasure request (privacy policy 5.4.3), by id.
    Request(String),
}

/// One class of a subject's personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRecord {
    /// The class's name (`[privacy.classes.NAME]`).
    pub class: String,
    /// Delete or anonymise, as the policy said when the erasure was
    /// scheduled (frozen then, like a buffer's length).
    pub erasure: Erasure,
    /// When the erasure may start; `None`: nothing scheduled.
    #[serde(default)]
    pub erase_after: Option<Timestamp>,
    /// What scheduled it.
    #[serde(default)]
    pub scheduled_by: Option<Schedule>,
    /// The privacy policy version that scheduled it.
    #[serde(default)]
    pub policy_version: Option<String>,
    /// The end of the class's `legal_minimum`: never erased before it.
    #[serde(default)]
    pub keep_until: Option<Timestamp>,
    /// When its erasure started (the intent recorded).
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// Its erasure started under an operator's approval of a batch the
    /// mass-deletion guard held: not counted in the guard's windows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard_approved: bool,
    /// Its copy in each store of the class.
    pub copies: Vec<PersonalCopy>,
}

/// Where one store's copy of one class of a subject's data stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalState {
    /// Held, processed normally.
    Present,
    /// The executor is asked to restrict it.
    Restricting,
    /// Restricted: no read, copy, export or restore until lifted or erased.
    Restricted,
    /// The executor is asked to lift the restriction.
    Unrestricting,
    /// The executor is asked to delete or anonymise it.
    Erasing,
    /// Deleted or anonymised: confirmed by the executor.
    Erased,
}

impl PersonalState {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonalState::Present => "present",
            PersonalState::Restricting => "restricting",
            PersonalState::Restricted => "restricted",
            PersonalState::Unrestricting => "unrestricting",
            PersonalState::Erasing => "erasing",
            PersonalState::Erased => "erased",
        }
    }
}

/// One store's copy of one class of a subject's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonalCopy {
    /// The personal store.
    pub store: String,
    /// Progress.
    pub state: PersonalState,
    /// Failed calls of the current action.
    #[serde(default)]
    pub attempts: u32,
    /// When the executor is to be called (next), while an action is due.
    #[serde(default)]
    pub next_attempt_at: Option<Timestamp>,
    /// Out of retries: waits for an operator.
    #[serde(default)]
    pub stuck: bool,
    /// The last failure (identifiers and codes only).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last action was confirmed.
    #[serde(default)]
    pub done_at: Option<Timestamp>,
    /// The audit record that proves the erasure (for the receipt).
    #[serde(default)]
    pub done_seq: Option<u64>,
}

/// What the engine carries out for a subject.
#[derive(Clone, Debug, PartialEq)]
pub enum PersonalEffect {
    /// An audit record (identifiers only, never the data).
    Record {
        /// Its kind.
        kind: AuditKind,
        /// Its data.
        data: Value,
    },
    /// Call a personal store's executor for one class (its intent is in
    /// the returned state, which must be durable first).
    Dispatch {
        /// The class.
        class: String,
        /// The store.
        store: String,
        /// What to ask.
        action: PersonalAction,
    },
}

/// The tenant's holds as the privacy rules see them.
#[derive(Clone, Copy, Debug)]
pub struct Holds<'a>(pub &'a TenantHolds);

impl Holds<'_> {
    /// True while any hold covers the tenant.
    pub fn in_force(&self) -> bool {
        !self.0.holds.is_empty()
    }

    /// The ids of the holds in force (a deferred request shows them).
    pub fn ids(&self) -> Vec<String> {
        self.0.holds.iter().map(|h| h.hold_id.clone()).collect()
    }

    /// The earliest a step that came due at `due` may run: while held,
    /// never; after a release that came at or after `due`, no sooner than
    /// `safety.after_hold_release` after it (domain-rules §1.2).
    pub fn floor(&self, due: Timestamp, rules: &Rules) -> Option<Timestamp> {
        if self.in_force() {
            return None;
        }
        let last = self.0.released.iter().map(|(_, t)| *t).max();
        Some(match last {
            Some(l) if l >= due => due.max(later(l, rules.after_hold_release)),
            _ => due,
        })
    }
}

/// The effects list and a helper to add a record to it.
pub(super) type Effects = Vec<PersonalEffect>;

pub(super) fn record(fx: &mut Effects, kind: AuditKind, data: Value) {
    fx.push(PersonalEffect::Record { kind, data });
}

impl Subject {
    /// A subject as first known: nothing scheduled, no request.
    pub fn new(tenant: &str, id: &str, registered_at: Option<Timestamp>) -> Subject {
        Subject {
            tenant: tenant.to_string(),
            id: id.to_string(),
            registered_at,
            closed_at: None,
            classes: Vec::new(),
            restricted_by: None,
            requests: Vec::new(),
        }
    }

    /// True for the account holder (the subject named like its tenant).
    pub fn is_account_holder(&self) -> bool {
        self.id == self.tenant
    }

    /// Adds the classes of `policy` this record lacks, and to classes whose
    /// erasure has not started the stores they lack: a class or store
    /// added to the config covers subjects known before. Nothing is ever
    /// removed (a store that left the config may still hold data).
    pub fn ensure_classes(&mut self, policy: &PrivacyPolicy, now: Timestamp) {
        for cp in &policy.classes {
            let idx = match self.classes.iter().position(|c| c.class == cp.name) {
                Some(i) => i,
                None => {
                    self.classes.push(ClassRecord {
                        class: cp.name.clone(),
                        erasure: cp.erasure,
                        erase_after: None,
                        scheduled_by: None,
                        policy_version: None,
                        keep_until: None,
                        started_at: None,
                        guard_approved: false,
                        copies: Vec::new(),
                    });
                    self.classes.len() - 1
                }
            };
            let class = &mut self.classes[idx];
            if class.started_at.is_some() {
                continue;
            }
            class.erasure = cp.erasure;
            for store in &cp.stores {
                if !class.copies.iter().any(|c| &c.store == store) {
                    // A restriction in force covers a store added later.
                    let mut copy = PersonalCopy::new(store, PersonalState::Present);
                    if self.restricted_by.is_some() {
                        copy.begin(PersonalState::Restricting, now);
                    }
                    class.copies.push(copy);
                }
            }
        }
    }

    /// `account.closed` at `at`: every class is scheduled for erasure at
    /// `at + after_closure` (privacy policy 5.5.2), kept at least to the
    /// end of its `legal_minimum` counted from the closure (7.2); a closure
    /// the daemon learns of late still gives `safety.late_event_floor`.
    pub fn close(&mut self, at: Timestamp, policy: &PrivacyPolicy, now: Timestamp, rules: &Rules) -> Effects {
        let mut fx = Effects::new();
        if self.closed_at.is_some_and(|c| c <= at) {
            return fx;
        }
        self.closed_at = Some(at);
        self.ensure_classes(policy, now);
        let floor = later(now, rules.late_event_floor);
        for cp in &policy.classes {
            let Some(class) = self.classes.iter_mut().find(|c| c.class == cp.name) else { continue };
            if class.started_at.is_some() {
                continue;
            }
            let keep = cp.legal_minimum.map(|m| later(at, m.to_chrono()));
            let date = later(at, cp.after_closure.to_chrono()).max(keep.unwrap_or(at)).max(floor);
            class.keep_until = class.keep_until.max(keep);
            if class.erase_after.is_none_or(|t| date < t) {
                class.erase_after = Some(date);
                class.scheduled_by = Some(Schedule::Closure);
                class.policy_version = Some(policy.version.clone());
                record(
                    &mut fx,
                    AuditKind::PersonalScheduled,
                    json!({"subject": self.id, "class": class.class, "erase_after": fmt_rfc3339(date),
                           "erasure": class.erasure.as_str(), "because": "account_closed",
                           "keep_until": keep.map(fmt_rfc3339), "policy_version": policy.version}),
                );
            }
        }
        fx
    }

    /// What time does now: warnings and overdue flags of requests, approved
    /// requests executed, classes whose date came erased, due executor
    /// calls (re)made, and requests completed.
    pub fn on_time(&mut self, now: Timestamp, policy: &PrivacyPolicy, holds: Holds<'_>, rules: &Rules) -> Effects {
        let mut fx = Effects::new();
        self.ensure_classes(policy, now);
        self.request_clocks(now, policy, &mut fx);
        self.execute_approved(now, policy, holds, rules, &mut fx);
        self.start_erasures(now, holds, rules, &mut fx);
        self.dispatch_due(now, holds, rules, &mut fx);
        self.complete_requests(now, &mut fx);
        fx
    }

    /// The erasure [`Subject::on_time`] would begin at `now` if deletions
    /// could start (worked out on a copy: the rules are pure), as the
    /// mass-deletion guard judges it: one start, named by the earliest and
    /// the latest date of the classes it begins (`safety.guard`, issue 12).
    /// `None` when no class would begin.
    pub fn erasure_would_start(
        &self,
        now: Timestamp,
        policy: &PrivacyPolicy,
        holds: Holds<'_>,
        rules: &Rules,
    ) -> Option<(Timestamp, Timestamp)> {
        let mut probe = self.clone();
        probe.on_time(now, policy, holds, &Rules { may_start: true, may_dispatch: false, ..*rules });
        let dates: Vec<Timestamp> =
            probe.classes_begun_since(self).filter_map(|c| c.start_date(holds, rules)).collect();
        Some((*dates.iter().min()?, *dates.iter().max()?))
    }

    /// The classes whose erasure began in this record and not in `before`
    /// (the same subject, earlier).
    fn classes_begun_since<'a>(&'a self, before: &'a Subject) -> impl Iterator<Item = &'a ClassRecord> + 'a {
        self.classes.iter().filter(move |c| {
            c.started_at.is_some()
                && before.classes.iter().find(|b| b.class == c.class).is_none_or(|b| b.started_at.is_none())
        })
    }

    /// Marks the classes whose erasure began since `before` as begun under
    /// an operator's approval (not counted by the guard).
    pub fn approve_begun_since(&mut self, before: &Subject) {
        let begun: Vec<String> = self.classes_begun_since(before).map(|c| c.class.clone()).collect();
        for c in self.classes.iter_mut().filter(|c| begun.contains(&c.class)) {
            c.guard_approved = true;
        }
    }

    /// True when a class's erasure began since `before`.
    pub fn began_erasure_since(&self, before: &Subject) -> bool {
        self.classes_begun_since(before).next().is_some()
    }

    /// The times the guard counts: when each class's erasure began, unless
    /// an operator's approval began it; one per instant (classes begun
    /// together are one start).
    pub fn guard_starts(&self) -> Vec<Timestamp> {
        let mut at: Vec<Timestamp> =
            self.classes.iter().filter(|c| !c.guard_approved).filter_map(|c| c.started_at).collect();
        at.sort();
        at.dedup();
        at
    }

    /// Starts the erasure of every class whose date (and legal minimum)
    /// has come, unless a hold covers the tenant or deletions may not
    /// start: each copy not yet erased is marked `erasing` (the intent).
    fn start_erasures(&mut self, now: Timestamp, holds: Holds<'_>, rules: &Rules, fx: &mut Effects) {
        if !rules.may_start {
            return;
        }
        for class in &mut self.classes {
            let Some(date) = class.start_date(holds, rules) else { continue };
            if class.started_at.is_some() || date > now {
                continue;
            }
            class.started_at = Some(now);
            for c in &mut class.copies {
                if c.state != PersonalState::Erased {
                    c.begin(PersonalState::Erasing, now);
                }
            }
            let because = match &class.scheduled_by {
                Some(Schedule::Request(id)) => json!({"request": id}),
                _ => json!("account_closed"),
            };
            record(
                fx,
                AuditKind::PersonalErasureStarted,
                json!({"subject": self.id, "class": class.class, "erasure": class.erasure.as_str(),
                       "erase_after": class.erase_after.map(fmt_rfc3339), "because": because,
                       "policy_version": class.policy_version}),
            );
        }
    }

    /// Asks for every executor call that is due: copies waiting on an
    /// action, not stuck, whose next attempt has come; erasures wait while
    /// a hold covers the tenant (a hold stops every step toward deletion).
    fn dispatch_due(&mut self, now: Timestamp, holds: Holds<'_>, rules: &Rules, fx: &mut Effects) {
        if !rules.may_dispatch {
            return;
        }
        for class in &self.classes {
            for c in &class.copies {
                let Some(action) = c.action(class.erasure) else { continue };
                if c.stuck || c.call_date(holds, rules).is_none_or(|t| t > now) {
                    continue;
                }
                fx.push(PersonalEffect::Dispatch { class: class.class.clone(), store: c.store.clone(), action });
            }
        }
    }

    /// The executor confirmed `action` on a copy. An answer to an action
    /// the copy no longer waits on (restricted, then erased meanwhile) is
    /// ignored: the copy's current action is called next.
    pub fn copy_done(&mut self, class: &str, store: &str, action: PersonalAction, now: Timestamp) -> Effects {
        let mut fx = Effects::new();
        let subject = self.id.clone();
        let Some(cls) = self.classes.iter_mut().find(|c| c.class == class) else { return fx };
        let erasure = cls.erasure;
        let Some(c) = cls.copies.iter_mut().find(|c| c.store == store) else { return fx };
        if c.action(erasure) != Some(action) {
            return fx;
        }
        let (state, kind) = match action {
            PersonalAction::Delete => (PersonalState::Erased, AuditKind::PersonalErased),
            PersonalAction::Anonymize => (PersonalState::Erased, AuditKind::PersonalAnonymized),
            PersonalAction::Restrict => (PersonalState::Restricted, AuditKind::PersonalRestricted),
            PersonalAction::Unrestrict => (PersonalState::Present, AuditKind::PersonalUnrestricted),
        };
        c.state = state;
        c.attempts = 0;
        c.next_attempt_at = None;
        c.last_error = None;
        c.done_at = Some(now);
        let request = self.requests.iter().rev().find(|r| r.state == RequestState::Executing).map(|r| r.id.clone());
        record(&mut fx, kind, json!({"subject": subject, "class": class, "store": store, "request": request}));
        if action == PersonalAction::Unrestrict
            && !self.any_copy(|s| {
                matches!(s, PersonalState::Restricted | PersonalState::Restricting | PersonalState::Unrestricting)
            })
        {
            self.restricted_by = None;
        }
        self.complete_requests(now, &mut fx);
        fx
    }

    /// The executor failed: retried with backoff, `stuck` after
    /// `rules.max_attempts` (an operator retries it).
    pub fn copy_failed(
        &mut self,
        class: &str,
        store: &str,
        action: PersonalAction,
        error: &str,
        now: Timestamp,
        rules: &Rules,
    ) -> Effects {
        let mut fx = Effects::new();
        let subject = self.id.clone();
        let Some(cls) = self.classes.iter_mut().find(|c| c.class == class) else { return fx };
        let erasure = cls.erasure;
        let Some(c) = cls.copies.iter_mut().find(|c| c.store == store) else { return fx };
        if c.action(erasure) != Some(action) {
            return fx;
        }
        c.attempts += 1;
        c.last_error = Some(error.to_string());
        let data = json!({"subject": subject, "class": class, "store": store, "action": action.as_str(),
                          "attempts": c.attempts, "error": error});
        if c.attempts >= rules.max_attempts {
            c.stuck = true;
            c.next_attempt_at = None;
            record(&mut fx, AuditKind::PersonalStuck, data);
        } else {
            c.next_attempt_at = Some(crate::domain::lifecycle::later(now, retry_delay(c.attempts)));
            record(&mut fx, AuditKind::PersonalFailed, data);
        }
        fx
    }

    /// An operator retries the stuck copies (all, or one store's); returns
    /// how many were stuck.
    pub fn retry_stuck(&mut self, store: Option<&str>, now: Timestamp) -> (usize, Effects) {
        let mut fx = Effects::new();
        let mut n = 0;
        for class in &mut self.classes {
            for c in &mut class.copies {
                if c.stuck && store.is_none_or(|s| s == c.store) {
                    c.stuck = false;
                    c.attempts = 0;
                    c.next_attempt_at = Some(now);
                    n += 1;
                    record(
                        &mut fx,
                        AuditKind::PersonalRetry,
                        json!({"subject": self.id, "class": class.class, "store": c.store}),
                    );
                }
            }
        }
        (n, fx)
    }

    /// When this record must be looked at again: a request's warning or due
    /// time, an approved request's execution, a class's erasure date, an
    /// executor call's next attempt. Holds are the tenant's: a release
    /// rewrites the record, so a held step needs no time.
    pub fn next_due(&self, policy: &PrivacyPolicy, holds: Holds<'_>, rules: &Rules) -> Option<Timestamp> {
        let requests = self.requests.iter().filter_map(|r| r.next_due(policy, holds, rules));
        let erasures =
            self.classes.iter().filter(|c| c.started_at.is_none()).filter_map(|c| c.start_date(holds, rules));
        let calls = self.classes.iter().flat_map(|class| {
            class.copies.iter().filter_map(move |c| {
                let waiting = c.action(class.erasure).is_some() && !c.stuck;
                if waiting {
                    c.call_date(holds, rules)
                } else {
                    None
                }
            })
        });
        requests.chain(erasures).chain(calls).min()
    }

    /// Whether the subject's personal data may be restored from a backup
    /// or copied back (the restore gate): never once restricted or erased
    /// (privacy policy 5.3.3). Err says why.
    pub fn restore_refusal(&self) -> Option<String> {
        if self.restricted_by.is_some()
            || self.any_copy(|s| matches!(s, PersonalState::Restricted | PersonalState::Restricting))
        {
            return Some(format!("personal data of subject {:?} is restricted", self.id));
        }
        if self.any_copy(|s| matches!(s, PersonalState::Erasing | PersonalState::Erased)) {
            return Some(format!("personal data of subject {:?} is erased or being erased", self.id));
        }
        None
    }

    /// Whether any copy of any class is in a state `f` admits.
    pub(super) fn any_copy(&self, f: impl Fn(PersonalState) -> bool) -> bool {
        self.classes.iter().any(|c| c.copies.iter().any(|p| f(p.state)))
    }
}

impl ClassRecord {
    /// When this class's erasure may start: its date, not before its legal
    /// minimum, and as the tenant's holds allow; `None` when none is
    /// scheduled or a hold is in force.
    pub fn start_date(&self, holds: Holds<'_>, rules: &Rules) -> Option<Timestamp> {
        let date = self.erase_after?.max(self.keep_until.unwrap_or(self.erase_after?));
        holds.floor(date, rules)
    }

    /// True once every copy is erased.
    pub fn is_erased(&self) -> bool {
        self.copies.iter().all(|c| c.state == PersonalState::Erased)
    }
}

impl PersonalCopy {
    /// A copy in `state`, its call (if any) due at once.
    pub(super) fn new(store: &str, state: PersonalState) -> PersonalCopy {
        PersonalCopy {
            store: store.to_string(),
            state,
            attempts: 0,
            next_attempt_at: None,
            stuck: false,
            last_error: None,
            done_at: None,
            done_seq: None,
        }
    }

    /// Records the intent to move to `state` (an action state): its call is
    /// due at `now`, with fresh retries.
    pub(super) fn begin(&mut self, state: PersonalState, now: Timestamp) {
        self.state = state;
        self.attempts = 0;
        self.stuck = false;
        self.last_error = None;
        self.next_attempt_at = Some(now);
    }

    /// When its call may be made: its next attempt; for an erasure, as the
    /// tenant's holds allow (none while held, and not sooner than
    /// `safety.after_hold_release` after a release that came since).
    fn call_date(&self, holds: Holds<'_>, rules: &Rules) -> Option<Timestamp> {
        let at = self.next_attempt_at?;
        match self.state {
            PersonalState::Erasing => holds.floor(at, rules),
            _ => Some(at),
        }
    }

    /// The action this copy waits on, for a class erased by `erasure`.
    pub fn action(&self, erasure: Erasure) -> Option<PersonalAction> {
        match self.state {
            PersonalState::Restricting => Some(PersonalAction::Restrict),
            PersonalState::Unrestricting => Some(PersonalAction::Unrestrict),
            PersonalState::Erasing => Some(erasure.action()),
            _ => None,
        }
    }
}
