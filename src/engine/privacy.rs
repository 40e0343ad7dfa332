//! Personal data (issue 12, product-spec §8): the events about an account
//! and its people applied to subjects by the pure rules of
//! [`crate::domain::privacy`], subjects whose time came run by the tick,
//! and the personal stores' executor answers recorded, with the same
//! machinery as copies of business data (intent durable before the call,
//! retries, the gates of pause, dry run, clock anomaly and guard).

use super::safety::Grant;
use super::{Engine, EngineError};
use crate::audit::AuditKind;
use crate::domain::event::{Event, EventBody, TerminationReason};
use crate::domain::guard::{candidate_subject, is_subject_candidate, subject_candidate, Deletion, Verdict};
use crate::domain::lifecycle::{Effect, Rejection, Resource, TenantHolds};
use crate::domain::privacy::{Holds, PersonalAction, PersonalEffect, RequestEvent, Subject};
use crate::store::{SubjectKey, WriteSet};
use crate::time::Timestamp;
use std::collections::HashMap;

/// Subjects read from their deadline index per slice.
const SUBJECT_SLICE: usize = 256;

/// Resources changed by an event, with their effects and next due time.
type ResourceChanges = Vec<(Resource, Vec<Effect>, Option<Timestamp>)>;

/// What one personal event changes: resources (an account closure ends
/// them) and subjects, with their effects.
#[derive(Default)]
pub(super) struct PersonalChanges {
    /// Resources, their effects and next due time.
    pub(super) resources: ResourceChanges,
    /// Subjects and their effects.
    pub(super) subjects: Vec<(Subject, Vec<PersonalEffect>)>,
}

impl Engine {
    /// Applies an event about the account or its people; Err(rejection)
    /// with nothing changed when the state forbids it.
    pub(super) fn apply_personal(
        &mut self,
        ev: &Event,
        now: Timestamp,
    ) -> Result<Result<PersonalChanges, Rejection>, EngineError> {
        let policy = self.config.privacy.clone();
        let rules = self.rules();
        let tenant = ev.tenant.as_str();
        let mut changes = PersonalChanges::default();
        let owned = |key: Option<SubjectKey>, id: &str, subject: Option<&str>| -> Result<SubjectKey, Rejection> {
            match key {
                None => Err(Rejection { message: format!("unknown request {id:?}"), retryable: true }),
                Some(k) if k.tenant != tenant => {
                    Err(Rejection::new(format!("request {id:?} belongs to another tenant")))
                }
                Some(k) if subject.is_some_and(|s| s != k.subject) => Err(Rejection::new(format!(
                    "request {id:?} is not a request of subject {:?}",
                    subject.unwrap_or("")
                ))),
                Some(k) => Ok(k),
            }
        };
        match &ev.body {
            EventBody::AccountClosed => {
                let mut ids = self.pending.tenant_subjects(&*self.store, tenant)?;
                if !ids.iter().any(|s| s == tenant) {
                    ids.push(tenant.to_string());
                }
                for id in ids {
                    let key = SubjectKey { tenant: tenant.to_string(), subject: id.clone() };
                    let mut s = self.read_subject(&key)?.unwrap_or_else(|| Subject::new(tenant, &id, None));
                    let fx = s.close(ev.at, &policy, now, &rules);
                    changes.subjects.push((s, fx));
                }
                changes.resources = self.close_resources(ev, now)?;
            }
            EventBody::SubjectCreated { subject } => {
                let key = SubjectKey { tenant: tenant.to_string(), subject: subject.clone() };
                if subject == tenant {
                    return Ok(Err(Rejection::new(format!(
                        "subject {subject:?} is the account holder (the tenant itself), known already"
                    ))));
                }
                if self.read_subject(&key)?.is_some() {
                    return Ok(Err(Rejection::new(format!("subject {subject:?} is already registered"))));
                }
                let holder = SubjectKey { tenant: tenant.to_string(), subject: tenant.to_string() };
                let mut s = Subject::new(tenant, subject, Some(ev.at));
                if let Some(closed) = self.read_subject(&holder)?.and_then(|h| h.closed_at) {
                    // A user registered after the closure goes with the account.
                    let fx = s.close(closed, &policy, now, &rules);
                    changes.subjects.push((s, fx));
                } else {
                    changes.subjects.push((s, Vec::new()));
                }
            }
            EventBody::Requested { request } => {
                let key = SubjectKey { tenant: tenant.to_string(), subject: request.subject.clone() };
                match self.pending.request_owner(&*self.store, &request.request_id)? {
                    Some(owner) if owner != key => {
                        return Ok(Err(Rejection::new(format!(
                            "request id {:?} is already used for another subject",
                            request.request_id
                        ))))
                    }
                    _ => {}
                }
                let mut s = match self.read_subject(&key)? {
                    Some(s) => s,
                    None if request.subject == tenant => Subject::new(tenant, tenant, None),
                    None => {
                        return Ok(Err(Rejection {
                            message: format!("unknown subject {:?} of tenant {tenant:?}", request.subject),
                            retryable: true,
                        }))
                    }
                };
                let req = RequestEvent {
                    id: request.request_id.clone(),
                    kind: request.kind,
                    grounds: request.grounds.clone(),
                    verified: request.verified,
                    at: ev.at,
                };
                match s.receive(req, &policy, now) {
                    Ok(fx) => changes.subjects.push((s, fx)),
                    Err(r) => return Ok(Err(r)),
                }
            }
            EventBody::RestrictionLifted { request_id, subject } => {
                let owner = self.pending.request_owner(&*self.store, request_id)?;
                let key = match owned(owner, request_id, Some(subject)) {
                    Ok(k) => k,
                    Err(r) => return Ok(Err(r)),
                };
                let Some(mut s) = self.read_subject(&key)? else {
                    return Ok(Err(Rejection::new(format!("unknown subject {subject:?}"))));
                };
                match s.lift(request_id, ev.at, now) {
                    Ok(fx) => changes.subjects.push((s, fx)),
                    Err(r) => return Ok(Err(r)),
                }
            }
            EventBody::RequestDecided { request_id, decision } => {
                let owner = self.pending.request_owner(&*self.store, request_id)?;
                let key = match owned(owner, request_id, None) {
                    Ok(k) => k,
                    Err(r) => return Ok(Err(r)),
                };
                let Some(mut s) = self.read_subject(&key)? else {
                    return Ok(Err(Rejection::new(format!("unknown request {request_id:?}"))));
                };
                match s.decide(request_id, *decision, now) {
                    Ok(fx) => changes.subjects.push((s, fx)),
                    Err(r) => return Ok(Err(r)),
                }
            }
            _ => {}
        }
        Ok(Ok(changes))
    }

    /// `account.closed` ends every resource of the tenant: a termination
    /// for reason `account_closed`, with the product's termination buffer
    /// (product-spec §8). A resource already on its way to deletion is left
    /// as it is.
    fn close_resources(&mut self, ev: &Event, now: Timestamp) -> Result<ResourceChanges, EngineError> {
        let config = self.config.clone();
        let rules = self.rules();
        let terminated = Event {
            body: EventBody::Terminated { reason: TerminationReason::AccountClosed },
            resource: None,
            ..ev.clone()
        };
        let mut out = Vec::new();
        for id in self.pending.tenant_resources(&*self.store, &ev.tenant)? {
            let Some(mut r) = self.read_resource(&id)? else { continue };
            let Some(policy) = config.products.get(&r.product) else {
                tracing::error!(resource = %r.id, product = %r.product, "product is not configured: account closure skipped it");
                continue;
            };
            let ev = Event { resource: Some(id.clone()), ..terminated.clone() };
            match r.apply(&ev, policy, rules, now) {
                Ok(fx) => {
                    let due = r.next_due(policy);
                    out.push((r, fx, due));
                }
                Err(rejection) => {
                    tracing::info!(resource = %id, error = %rejection, "account closure does not change this resource")
                }
            }
        }
        Ok(out)
    }

    /// A subject as last written: this step's pending writes, then the store.
    pub(super) fn read_subject(&self, key: &SubjectKey) -> Result<Option<Subject>, EngineError> {
        Ok(self.pending.subject(&*self.store, key)?)
    }

    /// Writes a subject with its effects: audit records (noting on each copy
    /// the sequence number that erased it, for the receipt) and executor
    /// calls queued; its due time from the tenant's holds.
    pub(super) fn put_subject(
        &mut self,
        w: &mut WriteSet,
        now: Timestamp,
        mut s: Subject,
        fx: Vec<PersonalEffect>,
    ) -> Result<(), EngineError> {
        let key = SubjectKey::of(&s);
        let holds = self.pending.tenant_holds(&*self.store, &s.tenant)?;
        self.calls.note_subject_holds(&key, !holds.holds.is_empty());
        for e in fx {
            match e {
                PersonalEffect::Record { kind, data } => {
                    let (class, store) =
                        (data["class"].as_str().map(String::from), data["store"].as_str().map(String::from));
                    let data_request = data["request"].as_str().map(String::from);
                    let tenant = s.tenant.clone();
                    self.record(w, now, kind, Some(&tenant), None, data);
                    let request = data_request.as_deref().and_then(|id| s.requests.iter_mut().find(|r| r.id == id));
                    if let Some(r) = request {
                        let seq = Some(self.journal.head.seq);
                        match kind {
                            AuditKind::RequestReceived => r.proof.received = seq,
                            AuditKind::RequestDecided => r.proof.decided = seq,
                            AuditKind::RequestCompleted => r.proof.completed = seq,
                            _ => {}
                        }
                    }
                    if matches!(kind, AuditKind::PersonalErased | AuditKind::PersonalAnonymized) {
                        let seq = self.journal.head.seq;
                        if let Some(c) = s
                            .classes
                            .iter_mut()
                            .filter(|c| Some(&c.class) == class.as_ref())
                            .flat_map(|c| c.copies.iter_mut())
                            .find(|c| Some(&c.store) == store.as_ref())
                        {
                            c.done_seq = Some(seq);
                        }
                    }
                }
                PersonalEffect::Dispatch { class, store, action } => {
                    self.calls.queue_personal(&key, class, store, action);
                }
            }
        }
        let due = s.next_due(&self.config.privacy, Holds(&holds), &self.rules());
        w.put_subject(s, due);
        Ok(())
    }

    /// Runs every subject indexed up to `horizon` (later than `now` at
    /// start: the leases of calls the previous run left in flight), as of
    /// `now`: the index read in slices, each slice's changes committed
    /// before the next is read.
    ///
    /// The erasures that would begin are judged first, as one batch, by
    /// the mass-deletion guard ([`Engine::judge_subject_starts`]).
    pub(super) fn run_due_subjects(&mut self, now: Timestamp, horizon: Timestamp) -> Result<(), EngineError> {
        self.settle()?;
        let judged = self.judge_subject_starts(now)?;
        let mut after: Option<(Timestamp, SubjectKey)> = None;
        loop {
            let slice = self.store.subjects_due(after.as_ref().map(|(t, k)| (*t, k)), horizon, SUBJECT_SLICE)?;
            let Some(last) = slice.last().cloned() else { return Ok(()) };
            for (_, key) in slice {
                self.run_subject(&key, now, &judged)?;
            }
            self.settle()?;
            after = Some(last);
        }
    }

    /// safety.guard for personal data (issue 12): every subject whose
    /// erasure would begin at `now` is judged as one batch, beside the
    /// resources' (the same windows: a subject's erasure is one start,
    /// whatever its classes). Let through, the batch is returned (each
    /// subject with the erasure it was judged for); crossing a limit, it is
    /// held whole and the guard trips. Subjects an operator approved are not
    /// judged again; an approval of a subject no longer about to begin that
    /// erasure lapses.
    fn judge_subject_starts(&mut self, now: Timestamp) -> Result<HashMap<String, Deletion>, EngineError> {
        let rules = self.rules();
        if !rules.may_start && !self.approved_may_start() {
            return Ok(HashMap::new());
        }
        let mut fresh = Vec::new();
        let mut approved = HashMap::new();
        let mut after: Option<(Timestamp, SubjectKey)> = None;
        loop {
            let slice = self.store.subjects_due(after.as_ref().map(|(t, k)| (*t, k)), now, SUBJECT_SLICE)?;
            let Some(last) = slice.last().cloned() else { break };
            for (_, key) in slice {
                let Some(s) = self.read_subject(&key)? else { continue };
                let Some(deletion) = self.subject_would_start(&s, now)? else { continue };
                let id = subject_candidate(&key.tenant, &key.subject);
                match self.safety.approved.get(&id) {
                    Some(d) if *d == deletion => {
                        approved.insert(id, deletion);
                    }
                    _ => fresh.push((id, deletion)),
                }
            }
            after = Some(last);
        }
        // An approved subject not listed as due now may still be about to
        // begin exactly that erasure (a call of another class in flight
        // holds its index entry at the call's lease): looked at itself.
        let unseen: Vec<(String, Deletion)> = self
            .safety
            .approved
            .iter()
            .filter(|(id, _)| is_subject_candidate(id) && !approved.contains_key(*id))
            .map(|(id, d)| (id.clone(), *d))
            .collect();
        for (id, d) in unseen {
            let Some((tenant, subject)) = candidate_subject(&id) else { continue };
            let key = SubjectKey { tenant: tenant.to_string(), subject: subject.to_string() };
            let Some(s) = self.read_subject(&key)? else { continue };
            if self.subject_would_start(&s, now)? == Some(d) {
                approved.insert(id, d);
            }
        }
        let before = self.safety.approved.len();
        self.safety.approved.retain(|id, _| !is_subject_candidate(id) || approved.contains_key(id));
        if self.safety.approved.len() != before {
            self.commit(WriteSet { guard: Some(self.safety.state()), ..Default::default() })?;
        }
        if !rules.may_start {
            return Ok(HashMap::new());
        }
        // The resources' burst let through and not yet begun (a slice a
        // step) counts as begun: judged beside it, the subjects must not
        // pass the limit the two make together.
        let pending = self.safety.burst_pending() as u64;
        let g = &self.config.safety.guard;
        match self.safety.guard.judge_beside(now, &fresh, pending, self.safety.tracked, &g.short(), &g.long()) {
            Verdict::Start => Ok(fresh.into_iter().collect()),
            Verdict::Hold(batch) => {
                self.trip_guard(now, batch)?;
                Ok(HashMap::new())
            }
        }
    }

    /// The erasure `s` would begin at `now` if nothing stopped it.
    fn subject_would_start(&self, s: &Subject, now: Timestamp) -> Result<Option<Deletion>, EngineError> {
        let holds = self.pending.tenant_holds(&*self.store, &s.tenant)?;
        Ok(self.erasure_probe(s, now, &holds))
    }

    /// [`Subject::erasure_would_start`] under the rules in force, as the
    /// guard names it.
    fn erasure_probe(&self, s: &Subject, now: Timestamp, holds: &TenantHolds) -> Option<Deletion> {
        let dates = s.erasure_would_start(now, &self.config.privacy, Holds(holds), &self.rules());
        dates.map(|(first, last)| Deletion::personal(first, last))
    }

    /// One subject's time-driven steps. An erasure begins only if the guard
    /// judged it in this pass (`judged`) or an operator approved exactly it;
    /// otherwise the subject stays due and the next pass judges it.
    pub(super) fn run_subject(
        &mut self,
        key: &SubjectKey,
        now: Timestamp,
        judged: &HashMap<String, Deletion>,
    ) -> Result<(), EngineError> {
        let Some(mut s) = self.read_subject(key)? else { return Ok(()) };
        let holds = self.pending.tenant_holds(&*self.store, &key.tenant)?;
        let mut rules = self.rules();
        let id = subject_candidate(&key.tenant, &key.subject);
        let grant = match self.erasure_probe(&s, now, &holds) {
            // Nothing would begin: the rules as they are (exactly what
            // the probe saw, so nothing begins either).
            None => None,
            Some(deletion) => {
                let g = self.safety.grant_personal(&id, &deletion, judged, rules.may_start, self.approved_may_start());
                rules.may_start = g.is_some();
                g
            }
        };
        let before = s.clone();
        let fx = s.on_time(now, &self.config.privacy, Holds(&holds), &rules);
        let mut w = WriteSet::default();
        match grant {
            Some(Grant::Approved) if s.began_erasure_since(&before) => {
                s.approve_begun_since(&before);
                self.safety.approved.remove(&id);
                w.guard = Some(self.safety.state());
            }
            Some(Grant::Judged) if s.began_erasure_since(&before) => self.safety.guard.started(now, 1),
            _ => {}
        }
        self.put_subject(&mut w, now, s, fx)?;
        self.commit(w)
    }

    /// A tenant's holds changed: its subjects are looked at again now (a
    /// release may let an erasure go; a hold stops calls waiting their turn).
    pub(super) fn subjects_of_tenant_changed(&mut self, tenant: &str, now: Timestamp) -> Result<(), EngineError> {
        for id in self.pending.tenant_subjects(&*self.store, tenant)? {
            // Not judged here: an erasure a release lets go waits for the
            // tick's judgment (the subject stays due).
            self.run_subject(&SubjectKey { tenant: tenant.to_string(), subject: id }, now, &HashMap::new())?;
        }
        Ok(())
    }

    /// A personal store's executor answered.
    pub(super) fn personal_result(
        &mut self,
        key: &SubjectKey,
        class: &str,
        store: &str,
        action: PersonalAction,
        outcome: super::CallOutcome,
    ) -> Result<(), EngineError> {
        let Some(mut s) = self.read_subject(key)? else { return Ok(()) };
        let now = self.clock.now();
        let fx = match &outcome {
            super::CallOutcome::Done => s.copy_done(class, store, action, now),
            super::CallOutcome::Failed(e) => {
                tracing::warn!(tenant = %key.tenant, subject = %key.subject, class, store, action = action.as_str(),
                    error = %e, "personal store's executor failed");
                s.copy_failed(class, store, action, e, now, &self.rules())
            }
            super::CallOutcome::NotRun => Vec::new(),
        };
        let mut w = WriteSet::default();
        self.put_subject(&mut w, now, s, fx)?;
        self.commit(w)
    }

    /// An operator retries a subject's stuck personal calls; how many.
    pub(super) fn retry_subject(&mut self, key: &SubjectKey, store: Option<&str>) -> Result<usize, EngineError> {
        let Some(mut s) = self.read_subject(key)? else { return Ok(0) };
        let now = self.clock.now();
        let (n, fx) = s.retry_stuck(store, now);
        if n > 0 {
            let mut w = WriteSet::default();
            self.put_subject(&mut w, now, s, fx)?;
            self.commit(w)?;
        }
        Ok(n)
    }
}

/// The executor action that carries out a personal action.
pub(super) fn executor_action(a: PersonalAction) -> crate::executor::Action {
    use crate::executor::Action;
    match a {
        PersonalAction::Delete => Action::Delete,
        PersonalAction::Anonymize => Action::Anonymize,
        PersonalAction::Restrict => Action::Restrict,
        PersonalAction::Unrestrict => Action::Unrestrict,
    }
}

/// The personal action an executor action answers, if it is one.
pub(super) fn personal_action(a: crate::executor::Action) -> Option<PersonalAction> {
    use crate::executor::Action;
    match a {
        Action::Delete => Some(PersonalAction::Delete),
        Action::Anonymize => Some(PersonalAction::Anonymize),
        Action::Restrict => Some(PersonalAction::Restrict),
        Action::Unrestrict => Some(PersonalAction::Unrestrict),
        Action::Purge => None,
    }
}
