//! A store that calls back around its writes, wrapping any engine: for
//! tests that watch what the engine makes durable and when (group commit),
//! or that stall a flush (fault injection), without each of them copying
//! the whole trait to change one method.

use super::{
    EventOutcome, Flag, HoldCounts, HoldEntry, HoldFilter, HoldKey, Store, StoreError, StoreStats, SubjectKey, WriteSet,
};
use crate::audit::{AuditHead, AuditRecord};
use crate::domain::guard::GuardState;
use crate::domain::lifecycle::{Resource, TenantHolds};
use crate::time::Timestamp;

/// A callback before a commit, shown the write set.
type CommitHook = Box<dyn Fn(&WriteSet) + Send + Sync>;

/// A callback around a flush.
type FlushHook = Box<dyn Fn() + Send + Sync>;

/// `inner`, with optional calls before each commit and before and after
/// each flush. Reads pass straight through.
pub struct Hooked<S> {
    inner: S,
    before_commit: Option<CommitHook>,
    before_flush: Option<FlushHook>,
    after_flush: Option<FlushHook>,
}

impl<S: Store> Hooked<S> {
    /// `inner` with no hook yet.
    pub fn new(inner: S) -> Hooked<S> {
        Hooked { inner, before_commit: None, before_flush: None, after_flush: None }
    }

    /// Calls `f` with each write set before it is committed.
    pub fn before_commit(mut self, f: impl Fn(&WriteSet) + Send + Sync + 'static) -> Self {
        self.before_commit = Some(Box::new(f));
        self
    }

    /// Calls `f` before each flush (it may block, as a stalled disk does).
    pub fn before_flush(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.before_flush = Some(Box::new(f));
        self
    }

    /// Calls `f` after each flush that succeeded.
    pub fn after_flush(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.after_flush = Some(Box::new(f));
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> Store for Hooked<S> {
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError> {
        self.inner.resource(id)
    }
    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError> {
        self.inner.event(event_id)
    }
    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.inner.due(now, limit)
    }
    fn due_after(
        &self,
        after: (Timestamp, &str),
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.inner.due_after(after, now, limit)
    }
    fn next_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due_after(now)
    }
    fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.inner.audit_head()
    }
    fn outbox_after(&self, after: u64) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.outbox_after(after)
    }
    fn clock(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.clock()
    }
    fn resource_count(&self) -> Result<u64, StoreError> {
        self.inner.resource_count()
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }
    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError> {
        self.inner.for_each_resource(f)
    }
    fn resources_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Resource, Option<Timestamp>)>, StoreError> {
        self.inner.resources_after(after, limit)
    }
    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.inner.tenant_resources(tenant)
    }
    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError> {
        self.inner.tenant_holds(tenant)
    }
    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.certificate(resource)
    }
    fn flag(&self, flag: Flag) -> Result<bool, StoreError> {
        self.inner.flag(flag)
    }
    fn guard_state(&self) -> Result<GuardState, StoreError> {
        self.inner.guard_state()
    }
    fn commit(&self, w: WriteSet) -> Result<(), StoreError> {
        if let Some(f) = &self.before_commit {
            f(&w);
        }
        self.inner.commit(w)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if let Some(f) = &self.before_flush {
            f();
        }
        self.inner.flush()?;
        if let Some(f) = &self.after_flush {
            f();
        }
        Ok(())
    }
    fn due_before(
        &self,
        until: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.inner.due_before(until, after, limit)
    }
    fn held_or_deleting(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.held_or_deleting(after, limit)
    }
    fn products_in_use(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.inner.products_in_use()
    }
    fn needing_migration(&self) -> Result<Vec<String>, StoreError> {
        self.inner.needing_migration()
    }
    fn deletions_started_after(&self, since: Timestamp) -> Result<Vec<Timestamp>, StoreError> {
        self.inner.deletions_started_after(since)
    }
    fn holds(&self, filter: &HoldFilter, after: Option<&HoldKey>, limit: usize) -> Result<Vec<HoldEntry>, StoreError> {
        self.inner.holds(filter, after, limit)
    }
    fn reviews_due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, HoldKey)>, StoreError> {
        self.inner.reviews_due(now, limit)
    }
    fn next_review_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_review_after(now)
    }
    fn hold_counts(&self) -> Result<HoldCounts, StoreError> {
        self.inner.hold_counts()
    }
    fn subject(&self, key: &SubjectKey) -> Result<Option<crate::domain::privacy::Subject>, StoreError> {
        self.inner.subject(key)
    }
    fn tenant_subjects(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.inner.tenant_subjects(tenant)
    }
    fn subjects_due(
        &self,
        after: Option<(Timestamp, &SubjectKey)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, SubjectKey)>, StoreError> {
        self.inner.subjects_due(after, until, limit)
    }
    fn next_subject_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_subject_due_after(now)
    }
    fn request_owner(&self, request_id: &str) -> Result<Option<SubjectKey>, StoreError> {
        self.inner.request_owner(request_id)
    }
    fn requests_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        self.inner.requests_after(after, limit)
    }
    fn open_requests(&self) -> Result<Vec<super::OpenRequest>, StoreError> {
        self.inner.open_requests()
    }
}
