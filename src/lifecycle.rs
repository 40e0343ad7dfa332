//! The resource lifecycle as a pure state machine: no I/O, no clock, no
//! tokio. Inputs are events and `now`; outputs are the new state and a list of
//! [`Effect`]s (audit records to write, executor calls to make) that the
//! engine carries out. [`Resource::next_due`] says when to call again, the way
//! quinn's `poll_timeout` does, so the scheduler never has to know the rules.
//!
//! States (product-spec §6): `active` → `retained` (buffer running) →
//! `deleting` → `deleted` → `purged`; `retained` goes back to `active` when
//! its cause goes away. Deadlines are anchored at the time things happened
//! (an event's `at`, a term end), never at the time we noticed them.

use crate::event::{Billing, Event, EventBody};
use crate::executor::Action;
use crate::policy::{Cause, ProductPolicy, StoreClass, TerminationReason};
use crate::time::{fmt_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a resource stands (product-spec §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Served; a prepaid term end is pending.
    Active,
    /// The buffer is running: data is kept until `delete_after`.
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
    /// The executor confirmed the copy is gone.
    Deleted,
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
    /// When the copy was confirmed gone.
    #[serde(default)]
    pub done_at: Option<Timestamp>,
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
    /// End of the prepaid term.
    pub term_end: Option<Timestamp>,
    /// Where it stands.
    pub state: State,
    /// Why the buffer (or deletion) runs.
    pub cause: Option<Cause>,
    /// Termination reason when `cause` is termination.
    #[serde(default)]
    pub reason: Option<TerminationReason>,
    /// When the buffer started (anchored at the cause's own time).
    pub buffer_started_at: Option<Timestamp>,
    /// Nothing is deleted before this (domain-rules §5.3).
    pub delete_after: Option<Timestamp>,
    /// Version of the policy that set `delete_after` (domain-rules §5.2).
    pub policy_version: Option<String>,
    /// When deletion started.
    #[serde(default)]
    pub deletion_started_at: Option<Timestamp>,
    /// Every known copy of the data.
    pub copies: Vec<DataCopy>,
    /// What happened, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// What the engine must do after a transition.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Write an audit record of this kind about the resource.
    Record {
        /// Audit kind (product-spec §7).
        kind: &'static str,
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
#[error("{0}")]
pub struct Rejection(pub String);

/// Delay before retrying a failed executor call: 1 min doubling to 1 h.
pub fn retry_delay(failures: u32) -> chrono::Duration {
    let secs = 60u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    chrono::Duration::seconds(secs.min(3_600) as i64)
}

impl Resource {
    /// Starts tracking a resource from its `resource.created` event.
    pub fn create(ev: &Event, policy: &ProductPolicy) -> Result<(Resource, Vec<Effect>), Rejection> {
        let EventBody::Created { product, billing, term_end } = &ev.body else {
            return Err(Rejection(format!("unknown resource {:?}", ev.resource)));
        };
        let copies = policy
            .stores
            .iter()
            .filter(|s| s.class != StoreClass::Backup)
            .map(|s| DataCopy {
                store: s.name.clone(),
                copy: s.name.clone(),
                class: s.class,
                state: CopyState::Present,
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                done_at: None,
            })
            .collect();
        let mut r = Resource {
            id: ev.resource.clone(),
            tenant: ev.tenant.clone(),
            product: product.clone(),
            billing: *billing,
            term_end: *term_end,
            state: State::Active,
            cause: None,
            reason: None,
            buffer_started_at: None,
            delete_after: None,
            policy_version: None,
            deletion_started_at: None,
            copies,
            history: Vec::new(),
        };
        let detail = match term_end {
            Some(t) => format!("created ({product}, prepaid, term ends {})", fmt_rfc3339(*t)),
            None => format!("created ({product}, postpaid)"),
        };
        r.log(ev.at, "resource.created", detail);
        Ok((r, Vec::new()))
    }

    /// Applies an event about this resource, as of the event's own time.
    pub fn apply(&mut self, ev: &Event, policy: &ProductPolicy) -> Result<Vec<Effect>, Rejection> {
        if ev.tenant != self.tenant {
            return Err(Rejection(format!("resource {:?} belongs to another tenant", self.id)));
        }
        let mut fx = Vec::new();
        match &ev.body {
            EventBody::Created { .. } => {
                return Err(Rejection(format!("resource {:?} already exists", self.id)));
            }
            EventBody::Renewed { term_end } => {
                if self.billing == Billing::Postpaid {
                    return Err(Rejection("a postpaid resource has no term to renew".into()));
                }
                self.refuse_if_deleting("renewal")?;
                // Renewals may arrive out of order: the latest term end wins,
                // so the result does not depend on arrival order.
                let old = self.term_end;
                let new = old.map_or(*term_end, |o| o.max(*term_end));
                self.term_end = Some(new);
                self.log(ev.at, "resource.renewed", format!("renewed until {}", fmt_rfc3339(new)));
                // A renewal cancels an expiry buffer when it extends past the
                // term end that started it (domain-rules §1.2: the cause went away).
                if self.state == State::Retained
                    && self.cause == Some(Cause::Expiry)
                    && self.buffer_started_at.is_some_and(|started| new > started)
                {
                    self.cancel_buffer(ev.at, "renewed", &mut fx);
                }
            }
            EventBody::Released => {
                self.refuse_if_deleting("release")?;
                if self.state == State::Retained {
                    self.cancel_buffer(ev.at, "released by the tenant", &mut fx);
                }
                // general terms 4.1.4: the tenant's instruction, no buffer.
                self.start_buffer(Cause::Release, None, ev.at, policy, &mut fx);
            }
        }
        Ok(fx)
    }

    /// Moves the resource along by time alone: term ends pass, buffers run
    /// out, copies whose (re)try time has come are dispatched. `busy` says
    /// whether a copy's executor call is already in flight. With
    /// `may_delete` false (dry run) a passed deadline starts nothing: the
    /// resource stays `retained` with its deadline, for people to inspect.
    pub fn advance(
        &mut self,
        policy: &ProductPolicy,
        now: Timestamp,
        may_delete: bool,
        busy: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        loop {
            match self.state {
                State::Active => match self.term_end {
                    // general terms 7.2.1: the term ends by itself.
                    Some(end) if self.billing == Billing::Prepaid && end <= now => {
                        self.start_buffer(Cause::Expiry, None, end, policy, &mut fx);
                    }
                    _ => break,
                },
                State::Retained => match self.delete_after {
                    Some(deadline) if deadline <= now && may_delete => self.start_deletion(policy, now, &mut fx),
                    _ => break,
                },
                State::Deleting => {
                    for c in &mut self.copies {
                        if c.state == CopyState::Deleting
                            && c.next_attempt_at.is_none_or(|t| t <= now)
                            && !busy(&c.store, &c.copy)
                        {
                            fx.push(Effect::Dispatch {
                                store: c.store.clone(),
                                copy: c.copy.clone(),
                                action: Action::Delete,
                            });
                        }
                    }
                    self.complete_if_done(now, &mut fx);
                    break;
                }
                State::Deleted | State::Purged => break,
            }
        }
        fx
    }

    /// Records an executor's confirmation that a copy is gone.
    pub fn copy_done(&mut self, store: &str, copy: &str, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(c) = self.copies.iter_mut().find(|c| c.store == store && c.copy == copy) else {
            return fx;
        };
        if c.state != CopyState::Deleting {
            return fx; // a late duplicate: the completion is recorded once
        }
        c.state = CopyState::Deleted;
        c.done_at = Some(now);
        c.next_attempt_at = None;
        let data = json!({"store": store, "copy": copy, "class": c.class, "failures_before": c.attempts});
        fx.push(Effect::Record { kind: "copy.deleted", data });
        self.log(now, "copy.deleted", format!("copy {copy} in store {store} deleted"));
        self.complete_if_done(now, &mut fx);
        fx
    }

    /// Records a failed executor call: the copy stays `deleting` and is tried
    /// again later. Nothing is dropped.
    pub fn copy_failed(&mut self, store: &str, copy: &str, error: &str, now: Timestamp) -> Vec<Effect> {
        let Some(c) = self.copies.iter_mut().find(|c| c.store == store && c.copy == copy) else {
            return Vec::new();
        };
        if c.state != CopyState::Deleting {
            return Vec::new();
        }
        c.attempts += 1;
        let next = now + retry_delay(c.attempts);
        c.next_attempt_at = Some(next);
        c.last_error = Some(error.to_string());
        vec![Effect::Record {
            kind: "copy.failed",
            data: json!({"store": store, "copy": copy, "failures": c.attempts,
                         "error": error, "retry_at": fmt_rfc3339(next)}),
        }]
    }

    /// When [`Resource::advance`] must next be called, if ever.
    pub fn next_due(&self) -> Option<Timestamp> {
        match self.state {
            State::Active if self.billing == Billing::Prepaid => self.term_end,
            State::Retained => self.delete_after,
            State::Deleting => self
                .copies
                .iter()
                .filter(|c| c.state == CopyState::Deleting)
                .map(|c| c.next_attempt_at.unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
                .min(),
            _ => None,
        }
    }

    fn refuse_if_deleting(&self, what: &str) -> Result<(), Rejection> {
        match self.state {
            State::Deleting | State::Deleted | State::Purged => Err(Rejection(format!(
                "{what} refused: resource {:?} is {}; deleted data cannot be restored (general terms 4.1.6)",
                self.id,
                self.state.as_str()
            ))),
            _ => Ok(()),
        }
    }

    fn start_buffer(
        &mut self,
        cause: Cause,
        reason: Option<TerminationReason>,
        start: Timestamp,
        policy: &ProductPolicy,
        fx: &mut Vec<Effect>,
    ) {
        let buffer = policy.buffer.for_cause(cause, reason);
        let deadline = start + buffer.to_chrono();
        self.state = State::Retained;
        self.cause = Some(cause);
        self.reason = reason;
        self.buffer_started_at = Some(start);
        self.delete_after = Some(deadline);
        self.policy_version = Some(policy.version.clone());
        if cause != Cause::Release {
            fx.push(Effect::Record {
                kind: "buffer.started",
                data: json!({"cause": cause, "buffer_started_at": fmt_rfc3339(start)}),
            });
            self.log(start, "buffer.started", format!("{} buffer of {buffer} started", cause.as_str()));
        }
        fx.push(Effect::Record {
            kind: "deletion.scheduled",
            data: json!({"cause": cause, "reason": reason, "buffer": buffer.to_string(),
                         "delete_after": fmt_rfc3339(deadline), "policy_version": policy.version}),
        });
        self.log(
            start,
            "deletion.scheduled",
            format!("deletion scheduled for {} (policy {})", fmt_rfc3339(deadline), policy.version),
        );
    }

    fn cancel_buffer(&mut self, at: Timestamp, why: &str, fx: &mut Vec<Effect>) {
        fx.push(Effect::Record {
            kind: "deletion.cancelled",
            data: json!({"cause": self.cause, "delete_after": self.delete_after.map(fmt_rfc3339), "why": why}),
        });
        self.log(at, "deletion.cancelled", format!("deletion cancelled: {why}"));
        self.state = State::Active;
        self.cause = None;
        self.reason = None;
        self.buffer_started_at = None;
        self.delete_after = None;
        self.policy_version = None;
    }

    /// Records the intent to delete every online and cache copy. The returned
    /// state must be durable before any executor is called.
    fn start_deletion(&mut self, policy: &ProductPolicy, now: Timestamp, fx: &mut Vec<Effect>) {
        // A store added to the product since creation still gets its copy deleted.
        for s in policy.stores.iter().filter(|s| s.class != StoreClass::Backup) {
            if !self.copies.iter().any(|c| c.store == s.name) {
                self.copies.push(DataCopy {
                    store: s.name.clone(),
                    copy: s.name.clone(),
                    class: s.class,
                    state: CopyState::Present,
                    attempts: 0,
                    next_attempt_at: None,
                    last_error: None,
                    done_at: None,
                });
            }
        }
        let mut n = 0;
        for c in self.copies.iter_mut().filter(|c| c.state == CopyState::Present && c.class != StoreClass::Backup) {
            c.state = CopyState::Deleting;
            c.next_attempt_at = Some(now);
            n += 1;
        }
        self.state = State::Deleting;
        self.deletion_started_at = Some(now);
        fx.push(Effect::Record {
            kind: "deletion.started",
            data: json!({"cause": self.cause, "delete_after": self.delete_after.map(fmt_rfc3339),
                         "policy_version": self.policy_version, "copies": n}),
        });
        self.log(now, "deletion.started", format!("deletion of {n} copies started"));
    }

    fn complete_if_done(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        let pending = |c: &&DataCopy| c.state != CopyState::Deleted;
        if self.state == State::Deleting
            && !self.copies.iter().filter(|c| c.class != StoreClass::Backup).any(|c| pending(&c))
        {
            self.state = State::Deleted;
            fx.push(Effect::Record { kind: "resource.deleted", data: json!({"cause": self.cause}) });
            self.log(now, "resource.deleted", "online and cache copies deleted".into());
        }
        if self.state == State::Deleted && !self.copies.iter().any(|c| pending(&c)) {
            self.state = State::Purged;
            fx.push(Effect::Record {
                kind: "resource.purged",
                data: json!({"cause": self.cause, "policy_version": self.policy_version,
                             "buffer_started_at": self.buffer_started_at.map(fmt_rfc3339),
                             "delete_after": self.delete_after.map(fmt_rfc3339)}),
            });
            self.log(now, "resource.purged", "every copy deleted".into());
        }
    }

    fn log(&mut self, at: Timestamp, what: &str, detail: String) {
        self.history.push(HistoryEntry { at, what: what.to_string(), detail });
    }
}
