//! Requests of a subject (product-spec §8): received with a due date
//! (`at + response_time`, privacy policy 5.6.1), warned about before it,
//! flagged `overdue` after it while unanswered; decided by an operator
//! (execute, or refuse with a ground of the closed list, privacy policy
//! 5.6.2 and 5.8) or at once with `auto_approve`; never executed
//! unverified (5.6.1: the identity may be verified first); deferred while
//! a hold covers the tenant; executed through every class, keeping the
//! classes under their `legal_minimum` until it ends (7.2); a repeated
//! request while one is open is linked to it, not executed twice.

use super::subject::{record, Effects, Holds, PersonalState, Schedule, Subject};
use super::{ErasureGround, PrivacyPolicy, RefusalGround, RequestKind, RequestState};
use crate::audit::AuditKind;
use crate::domain::lifecycle::{earlier, later, Rejection, Rules};
use crate::time::{fmt_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An operator's answer to a request (`request.decided`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Carry it out.
    Execute,
    /// Refuse it, on this ground.
    Refuse(RefusalGround),
}

/// A request as its event carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestEvent {
    /// The request's id (unique across the daemon).
    pub id: String,
    /// Erasure or restriction.
    pub kind: RequestKind,
    /// Why erasure is asked (empty for a restriction).
    pub grounds: Vec<ErasureGround>,
    /// Whether the requester's identity is verified.
    pub verified: bool,
    /// When it was made: the response time runs from here.
    pub at: Timestamp,
}

/// What became of one class for an erasure request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassOutcome {
    /// The class.
    pub class: String,
    /// Kept under its `legal_minimum` until then (refused for now, ground
    /// `legal_obligation`), and erased at that date.
    #[serde(default)]
    pub kept_until: Option<Timestamp>,
}

/// One request of a subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Its id.
    pub id: String,
    /// Erasure or restriction.
    pub kind: RequestKind,
    /// Why erasure is asked.
    #[serde(default)]
    pub grounds: Vec<ErasureGround>,
    /// Whether the requester's identity is verified (privacy policy 5.6.1).
    pub verified: bool,
    /// When it was made.
    pub received_at: Timestamp,
    /// When it must be answered by: `received_at + response_time`.
    pub due: Timestamp,
    /// Where it stands.
    pub state: RequestState,
    /// Set when `due` passed without an answer; stays set once answered.
    #[serde(default)]
    pub overdue: bool,
    /// How many of `warn_before`'s warnings were given.
    #[serde(default)]
    pub warnings_sent: u32,
    /// When it was decided.
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
    /// The refusal's ground.
    #[serde(default)]
    pub refusal: Option<RefusalGround>,
    /// The open request of the same subject and kind this one repeats: it
    /// shares that one's answer and is never executed on its own.
    #[serde(default)]
    pub linked_to: Option<String>,
    /// For an executed erasure: each class, and what was kept.
    #[serde(default)]
    pub outcomes: Vec<ClassOutcome>,
    /// When it completed (partially: the first time).
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// For a restriction: when it was lifted.
    #[serde(default)]
    pub lifted_at: Option<Timestamp>,
    /// The audit records that prove it (the receipt cites them): its
    /// `request.received`, `request.decided` and latest
    /// `request.completed`, as the engine wrote them.
    #[serde(default)]
    pub proof: RequestProof,
}

/// Sequence numbers of a request's own audit records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestProof {
    /// `request.received`.
    #[serde(default)]
    pub received: Option<u64>,
    /// `request.decided`.
    #[serde(default)]
    pub decided: Option<u64>,
    /// The latest `request.completed`.
    #[serde(default)]
    pub completed: Option<u64>,
}

impl Request {
    /// True while an answer is awaited from an operator.
    pub fn awaits_decision(&self) -> bool {
        self.state == RequestState::Received && self.linked_to.is_none()
    }

    /// The next time this request needs a look: a warning, its due date
    /// (a linked one's own too: it may come first, for a repeat that
    /// arrived late), or (approved) when it may execute.
    pub(super) fn next_due(&self, policy: &PrivacyPolicy, holds: Holds<'_>, rules: &Rules) -> Option<Timestamp> {
        match self.state {
            RequestState::Received => {
                let warning = policy
                    .warn_before
                    .get(self.warnings_sent as usize)
                    .map(|w| earlier(self.due, w.to_chrono()).max(self.received_at));
                warning.into_iter().chain((!self.overdue).then_some(self.due)).min()
            }
            RequestState::Approved if self.linked_to.is_none() => self.execution_date(holds, rules),
            _ => None,
        }
    }

    /// When an approved request may run: at once, unless a hold covers
    /// the tenant (an erasure waits; a restriction erases nothing and goes
    /// on), or was released since it was decided.
    fn execution_date(&self, holds: Holds<'_>, rules: &Rules) -> Option<Timestamp> {
        let decided = self.decided_at.unwrap_or(self.received_at);
        match self.kind {
            RequestKind::Restriction => Some(decided),
            RequestKind::Erasure => holds.floor(decided, rules),
        }
    }

    /// The request's view for audit data: ids and dates, never the data.
    fn data(&self, subject: &Subject) -> serde_json::Value {
        json!({"request": self.id, "subject": subject.id, "kind": self.kind.as_str(),
               "due": fmt_rfc3339(self.due), "state": self.state.as_str()})
    }
}

impl Subject {
    /// A request for this subject arrives. A request id already used for
    /// this subject is refused, unless it repeats the request with the
    /// identity now verified; a request while one of the same kind is open
    /// is linked to it.
    pub fn receive(&mut self, ev: RequestEvent, policy: &PrivacyPolicy, now: Timestamp) -> Result<Effects, Rejection> {
        let mut fx = Effects::new();
        if let Some(i) = self.requests.iter().position(|r| r.id == ev.id) {
            let r = &self.requests[i];
            if r.kind == ev.kind && ev.verified && !r.verified && !r.state.is_closed() {
                self.requests[i].verified = true;
                let data = self.requests[i].data(self);
                record(&mut fx, AuditKind::RequestVerified, data);
                self.auto_decide(i, policy, now, &mut fx);
                return Ok(fx);
            }
            return Err(Rejection::new(format!("request {:?} was already received", ev.id)));
        }
        let linked_to = self
            .requests
            .iter()
            .find(|r| r.kind == ev.kind && !r.state.is_closed() && r.linked_to.is_none())
            .map(|r| r.id.clone());
        let due = later(ev.at, policy.response_time.to_chrono());
        let mut req = Request {
            id: ev.id,
            kind: ev.kind,
            grounds: ev.grounds,
            verified: ev.verified,
            received_at: ev.at,
            due,
            state: RequestState::Received,
            overdue: false,
            warnings_sent: 0,
            decided_at: None,
            refusal: None,
            linked_to: linked_to.clone(),
            outcomes: Vec::new(),
            completed_at: None,
            lifted_at: None,
            proof: RequestProof::default(),
        };
        if let Some(primary) = &linked_to {
            if let Some(p) = self.requests.iter().find(|r| &r.id == primary) {
                mirror(&mut req, p);
            }
        }
        let mut data = req.data(self);
        data["verified"] = json!(req.verified);
        data["grounds"] = json!(req.grounds.iter().map(|g| g.as_str()).collect::<Vec<_>>());
        data["linked_to"] = json!(linked_to);
        data["received_at"] = json!(fmt_rfc3339(req.received_at));
        self.requests.push(req);
        record(&mut fx, AuditKind::RequestReceived, data);
        if linked_to.is_none() {
            let i = self.requests.len() - 1;
            self.auto_decide(i, policy, now, &mut fx);
        }
        Ok(fx)
    }

    /// With `auto_approve`, a verified request waiting for a decision is
    /// approved at once.
    fn auto_decide(&mut self, i: usize, policy: &PrivacyPolicy, now: Timestamp, fx: &mut Effects) {
        let r = &self.requests[i];
        if policy.auto_approve && r.verified && r.awaits_decision() {
            self.apply_decision(i, super::Decision::Execute, now, "auto_approve", fx);
        }
    }

    /// An operator decides a request (`request.decided`). Refused, with
    /// nothing changed: a request already answered or executed, one linked
    /// to another (decide that one), and executing one whose requester is
    /// not verified.
    pub fn decide(&mut self, id: &str, decision: Decision, now: Timestamp) -> Result<Effects, Rejection> {
        let i = self
            .requests
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| Rejection::new(format!("unknown request {id:?}")))?;
        let r = &self.requests[i];
        if let Some(primary) = &r.linked_to {
            return Err(Rejection::new(format!("request {id:?} repeats request {primary:?}: decide that one")));
        }
        if r.state != RequestState::Received {
            return Err(Rejection::new(format!("request {id:?} is already {}", r.state.as_str())));
        }
        if decision == Decision::Execute && !r.verified {
            return Err(Rejection::new(format!(
                "request {id:?} is not verified: the requester's identity must be verified before it is executed"
            )));
        }
        let mut fx = Effects::new();
        self.apply_decision(i, decision, now, "operator", &mut fx);
        Ok(fx)
    }

    fn apply_decision(&mut self, i: usize, decision: Decision, now: Timestamp, by: &str, fx: &mut Effects) {
        let r = &mut self.requests[i];
        r.decided_at = Some(now);
        match decision {
            Decision::Execute => r.state = RequestState::Approved,
            Decision::Refuse(ground) => {
                r.state = RequestState::Refused;
                r.refusal = Some(ground);
                r.completed_at = Some(now);
            }
        }
        let mut data = self.requests[i].data(self);
        data["decision"] = json!(match decision {
            Decision::Execute => "execute",
            Decision::Refuse(_) => "refuse",
        });
        data["ground"] = json!(self.requests[i].refusal.map(|g| g.as_str()));
        data["by"] = json!(by);
        data["overdue"] = json!(self.requests[i].overdue);
        record(fx, AuditKind::RequestDecided, data);
        self.sync_linked();
    }

    /// `restriction.lifted`: the restriction in force under request `id`
    /// is lifted in every store. Refused when that request's restriction
    /// is not in force (never executed, or lifted already).
    pub fn lift(&mut self, id: &str, at: Timestamp, now: Timestamp) -> Result<Effects, Rejection> {
        let r = self
            .requests
            .iter_mut()
            .find(|r| r.id == id && r.kind == RequestKind::Restriction)
            .ok_or_else(|| Rejection::new(format!("unknown restriction request {id:?}")))?;
        if r.state != RequestState::Completed || r.lifted_at.is_some() || self.restricted_by.as_deref() != Some(id) {
            return Err(Rejection::new(format!("the restriction of request {id:?} is not in force")));
        }
        r.lifted_at = Some(at);
        let mut fx = Effects::new();
        for class in &mut self.classes {
            for c in &mut class.copies {
                if matches!(c.state, PersonalState::Restricted | PersonalState::Restricting) {
                    c.begin(PersonalState::Unrestricting, now);
                }
            }
        }
        if !self.any_copy(|s| s == PersonalState::Unrestricting) {
            self.restricted_by = None;
        }
        record(
            &mut fx,
            AuditKind::RestrictionLifted,
            json!({"request": id, "subject": self.id, "at": fmt_rfc3339(at)}),
        );
        self.sync_linked();
        Ok(fx)
    }

    /// Warnings before a request's due date and the overdue flag after it,
    /// while it is unanswered (privacy policy 5.6.1: answered within the
    /// response time). A linked request is answered with the one it
    /// repeats, but its due date is its own.
    pub(super) fn request_clocks(&mut self, now: Timestamp, policy: &PrivacyPolicy, fx: &mut Effects) {
        for i in 0..self.requests.len() {
            if self.requests[i].state != RequestState::Received {
                continue;
            }
            let r = &mut self.requests[i];
            let mut warned = false;
            while let Some(w) = policy.warn_before.get(r.warnings_sent as usize) {
                if earlier(r.due, w.to_chrono()) > now {
                    break;
                }
                r.warnings_sent += 1;
                warned = true;
            }
            let overdue = !r.overdue && r.due <= now;
            if overdue {
                r.overdue = true;
            }
            let data = self.requests[i].data(self);
            if overdue {
                tracing::error!(request = %self.requests[i].id, subject = %self.id, tenant = %self.tenant,
                    "privacy request is overdue: it was not answered within privacy.response_time");
                record(fx, AuditKind::RequestOverdue, data);
            } else if warned {
                tracing::warn!(request = %self.requests[i].id, subject = %self.id, tenant = %self.tenant,
                    due = %fmt_rfc3339(self.requests[i].due), "privacy request awaits a decision");
                record(fx, AuditKind::RequestDueSoon, data);
            }
        }
        self.sync_linked();
    }

    /// Approved requests run when they may: an erasure schedules each class
    /// now, or at the end of its legal minimum (kept meanwhile, ground
    /// `legal_obligation`); a restriction asks every store to restrict.
    pub(super) fn execute_approved(
        &mut self,
        now: Timestamp,
        policy: &PrivacyPolicy,
        holds: Holds<'_>,
        rules: &Rules,
        fx: &mut Effects,
    ) {
        for i in 0..self.requests.len() {
            let r = &self.requests[i];
            if r.state != RequestState::Approved || r.linked_to.is_some() {
                continue;
            }
            // A restriction erases nothing: only an erasure waits for
            // deletions to be allowed to start.
            let Some(at) = r.execution_date(holds, rules).filter(|t| *t <= now) else { continue };
            if r.kind == RequestKind::Erasure && !rules.may_start {
                continue;
            }
            let (id, kind, received_at) = (r.id.clone(), r.kind, r.received_at);
            let outcomes = match kind {
                RequestKind::Erasure => self.schedule_erasure(&id, received_at, policy, at, now, fx),
                RequestKind::Restriction => {
                    self.restricted_by = Some(id.clone());
                    for class in &mut self.classes {
                        for c in &mut class.copies {
                            if matches!(c.state, PersonalState::Present | PersonalState::Unrestricting) {
                                c.begin(PersonalState::Restricting, now);
                            }
                        }
                    }
                    Vec::new()
                }
            };
            let r = &mut self.requests[i];
            r.state = RequestState::Executing;
            r.outcomes = outcomes;
            let data = self.requests[i].data(self);
            record(fx, AuditKind::RequestExecuting, data);
        }
        self.sync_linked();
    }

    /// Schedules every class for erasure by request `id`: at `at` (when
    /// the request could first execute: its decision, or as a hold's
    /// release allowed; so a start held back by a pause or the guard keeps
    /// its date, and an operator's approval of it still matches), or where
    /// a legal minimum still runs at `now` (counted from the closure, or
    /// from the request while the account is open), at its end.
    fn schedule_erasure(
        &mut self,
        id: &str,
        received_at: Timestamp,
        policy: &PrivacyPolicy,
        at: Timestamp,
        now: Timestamp,
        fx: &mut Effects,
    ) -> Vec<super::ClassOutcome> {
        let basis = self.closed_at.unwrap_or(received_at);
        let mut outcomes = Vec::new();
        for class in &mut self.classes {
            let minimum = policy.class(&class.class).and_then(|c| c.legal_minimum);
            let keep = minimum.map(|m| later(basis, m.to_chrono())).max(class.keep_until);
            let kept_until = keep.filter(|k| *k > now && !class.is_erased());
            class.keep_until = keep;
            let date = kept_until.unwrap_or(at);
            if class.started_at.is_none() && class.erase_after.is_none_or(|t| date < t) {
                class.erase_after = Some(date);
                class.scheduled_by = Some(Schedule::Request(id.to_string()));
                class.policy_version = Some(policy.version.clone());
                record(
                    fx,
                    AuditKind::PersonalScheduled,
                    json!({"subject": self.id, "class": class.class, "erase_after": fmt_rfc3339(date),
                           "erasure": class.erasure.as_str(), "because": {"request": id},
                           "keep_until": kept_until.map(fmt_rfc3339), "ground": kept_until.map(|_| "legal_obligation"),
                           "policy_version": policy.version}),
                );
            }
            outcomes.push(super::ClassOutcome { class: class.class.clone(), kept_until });
        }
        outcomes
    }

    /// Executing requests whose work is done complete: an erasure once
    /// every class not kept is erased (`partially_completed` while kept
    /// ones remain, `completed` once they go too), a restriction once every
    /// store restricted.
    pub(super) fn complete_requests(&mut self, now: Timestamp, fx: &mut Effects) {
        for i in 0..self.requests.len() {
            let r = &self.requests[i];
            if r.linked_to.is_some() || !matches!(r.state, RequestState::Executing | RequestState::PartiallyCompleted) {
                continue;
            }
            let next = match r.kind {
                RequestKind::Restriction => {
                    (!self.any_copy(|s| s == PersonalState::Restricting)).then_some(RequestState::Completed)
                }
                RequestKind::Erasure => {
                    let erased =
                        |class: &str| self.classes.iter().find(|c| c.class == class).is_none_or(|c| c.is_erased());
                    let kept_done = r.outcomes.iter().filter(|o| o.kept_until.is_some()).all(|o| erased(&o.class));
                    let now_done = r.outcomes.iter().filter(|o| o.kept_until.is_none()).all(|o| erased(&o.class));
                    match (now_done, kept_done) {
                        (true, true) => Some(RequestState::Completed),
                        (true, false) if r.state == RequestState::Executing => Some(RequestState::PartiallyCompleted),
                        _ => None,
                    }
                }
            };
            let Some(state) = next else { continue };
            let r = &mut self.requests[i];
            r.state = state;
            r.completed_at.get_or_insert(now);
            let mut data = self.requests[i].data(self);
            data["kept"] = json!(self.requests[i]
                .outcomes
                .iter()
                .filter_map(|o| o.kept_until.map(|t| json!({"class": o.class, "until": fmt_rfc3339(t)})))
                .collect::<Vec<_>>());
            if state == RequestState::Completed {
                data["kept"] = json!([]);
            }
            record(fx, AuditKind::RequestCompleted, data);
        }
        self.sync_linked();
    }

    /// Linked requests share their primary's answer.
    fn sync_linked(&mut self) {
        let primaries: Vec<Request> = self.requests.iter().filter(|r| r.linked_to.is_none()).cloned().collect();
        for r in &mut self.requests {
            if let Some(p) = r.linked_to.as_ref().and_then(|id| primaries.iter().find(|p| &p.id == id)) {
                mirror(r, p);
            }
        }
    }
}

/// Copies a primary request's answer onto a linked one.
fn mirror(linked: &mut Request, primary: &Request) {
    linked.state = primary.state;
    linked.decided_at = primary.decided_at;
    linked.refusal = primary.refusal;
    linked.outcomes = primary.outcomes.clone();
    linked.completed_at = primary.completed_at;
    linked.lifted_at = primary.lifted_at;
}
