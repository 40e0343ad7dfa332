//! The engine's writes not yet handed to the store, and reads that see
//! them (issue 11: one store write per group, not one per event).
//!
//! sled 0.34 rolls its IO buffer around every `apply_batch`
//! (engineering-notes), so a group of 1,000 events written one batch each
//! cost 1,000 buffer rolls before the one shared flush. Here every change of
//! a step is merged into one [`WriteSet`], and the commands later in the
//! same group read what the earlier ones wrote (a creation then a renewal of
//! the same resource, a repeated event id, a tenant hold then a resource of
//! that tenant) through [`Pending`] before the store. The engine settles
//! the set into the store in one commit wherever it reads the deadline index
//! or scans the records, and always before the flush that makes a step
//! durable: nothing is acknowledged or acted on from here.

use crate::domain::lifecycle::{Resource, TenantHolds};
use crate::domain::privacy::Subject;
use crate::store::{EventOutcome, Store, StoreError, SubjectKey, WriteSet};
use std::collections::{BTreeSet, HashMap};

/// Writes merged since the last settle, with indexes to read them by key.
#[derive(Default)]
pub(super) struct Pending {
    /// The merged writes, in the shape the store applies.
    w: WriteSet,
    /// Position of each resource in `w.resources`.
    resources: HashMap<String, usize>,
    /// Position of each tenant's holds in `w.tenants`.
    tenants: HashMap<String, usize>,
    /// Position of each event outcome in `w.events`.
    events: HashMap<String, usize>,
    /// Position of each certificate in `w.certificates`.
    certificates: HashMap<String, usize>,
    /// Resources written here, by tenant (for [`Pending::tenant_resources`]:
    /// a resource created earlier in the group is the tenant's too).
    by_tenant: HashMap<String, BTreeSet<String>>,
    /// Position of each subject in `w.subjects`.
    subjects: HashMap<SubjectKey, usize>,
    /// Subjects written here, by tenant.
    subjects_by_tenant: HashMap<String, BTreeSet<String>>,
    /// The subject of each request written here.
    request_owners: HashMap<String, SubjectKey>,
}

impl Pending {
    /// Whether nothing waits to be settled.
    pub(super) fn is_empty(&self) -> bool {
        self.w.is_empty()
    }

    /// Adds `w` after everything merged before: a later version of a
    /// resource, a tenant's holds, an event outcome or a certificate
    /// replaces the earlier one, audit records and switches keep their
    /// order, the latest clock, guard state and outbox trim win. Applying
    /// the merged set is the same as applying each in turn.
    pub(super) fn merge(&mut self, w: WriteSet) {
        let WriteSet {
            resources,
            tenants,
            events,
            audit,
            outbox_done_through,
            clock,
            flags,
            certificates,
            guard,
            subjects,
        } = w;
        for (s, due) in subjects {
            let key = SubjectKey::of(&s);
            self.subjects_by_tenant.entry(s.tenant.clone()).or_default().insert(s.id.clone());
            for r in &s.requests {
                self.request_owners.insert(r.id.clone(), key.clone());
            }
            match self.subjects.get(&key) {
                Some(&i) => self.w.subjects[i] = (s, due),
                None => {
                    self.subjects.insert(key, self.w.subjects.len());
                    self.w.subjects.push((s, due));
                }
            }
        }
        for (r, due) in resources {
            self.by_tenant.entry(r.tenant.clone()).or_default().insert(r.id.clone());
            upsert(&mut self.w.resources, &mut self.resources, r.id.clone(), (r, due));
        }
        for (tenant, holds) in tenants {
            upsert(&mut self.w.tenants, &mut self.tenants, tenant.clone(), (tenant, holds));
        }
        for (id, outcome) in events {
            upsert(&mut self.w.events, &mut self.events, id.clone(), (id, outcome));
        }
        for (id, cert) in certificates {
            upsert(&mut self.w.certificates, &mut self.certificates, id.clone(), (id, cert));
        }
        self.w.audit.extend(audit);
        self.w.flags.extend(flags);
        // The engine trims only records already in the store and the file
        // (settled, flushed, appended): a trim never covers a record still
        // pending here, which the store would keep (it trims what it held
        // before the commit).
        debug_assert!(
            outbox_done_through.is_none_or(|done| self.w.audit.first().is_none_or(|r| r.seq > done)),
            "an outbox trim covers a record not yet settled"
        );
        if outbox_done_through.is_some() {
            self.w.outbox_done_through = self.w.outbox_done_through.max(outbox_done_through);
        }
        if clock.is_some() {
            self.w.clock = clock;
        }
        if guard.is_some() {
            self.w.guard = guard;
        }
    }

    /// Takes the merged writes, leaving nothing pending.
    pub(super) fn take(&mut self) -> WriteSet {
        let w = std::mem::take(&mut self.w);
        *self = Pending::default();
        w
    }

    /// A resource as last written, here or in the store.
    pub(super) fn resource(&self, store: &dyn Store, id: &str) -> Result<Option<Resource>, StoreError> {
        match self.resources.get(id) {
            Some(&i) => Ok(Some(self.w.resources[i].0.clone())),
            None => store.resource(id),
        }
    }

    /// The outcome of an event id, here or in the store.
    pub(super) fn event(&self, store: &dyn Store, id: &str) -> Result<Option<EventOutcome>, StoreError> {
        match self.events.get(id) {
            Some(&i) => Ok(Some(self.w.events[i].1.clone())),
            None => store.event(id),
        }
    }

    /// A tenant's holds, here or in the store.
    pub(super) fn tenant_holds(&self, store: &dyn Store, tenant: &str) -> Result<TenantHolds, StoreError> {
        match self.tenants.get(tenant) {
            Some(&i) => Ok(self.w.tenants[i].1.clone()),
            None => store.tenant_holds(tenant),
        }
    }

    /// A subject as last written, here or in the store.
    pub(super) fn subject(&self, store: &dyn Store, key: &SubjectKey) -> Result<Option<Subject>, StoreError> {
        match self.subjects.get(key) {
            Some(&i) => Ok(Some(self.w.subjects[i].0.clone())),
            None => store.subject(key),
        }
    }

    /// A tenant's subject ids, those written here included, in id order.
    pub(super) fn tenant_subjects(&self, store: &dyn Store, tenant: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = store.tenant_subjects(tenant)?;
        if let Some(here) = self.subjects_by_tenant.get(tenant) {
            ids.extend(here.iter().cloned());
            ids.sort();
            ids.dedup();
        }
        Ok(ids)
    }

    /// The subject a request belongs to, here or in the store.
    pub(super) fn request_owner(&self, store: &dyn Store, id: &str) -> Result<Option<SubjectKey>, StoreError> {
        match self.request_owners.get(id) {
            Some(key) => Ok(Some(key.clone())),
            None => store.request_owner(id),
        }
    }

    /// A tenant's resource ids, those written here included, in id order.
    pub(super) fn tenant_resources(&self, store: &dyn Store, tenant: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = store.tenant_resources(tenant)?;
        if let Some(here) = self.by_tenant.get(tenant) {
            ids.extend(here.iter().cloned());
            ids.sort();
            ids.dedup();
        }
        Ok(ids)
    }
}

/// Replaces the entry keyed `key` in `items`, or appends it.
fn upsert<T>(items: &mut Vec<T>, at: &mut HashMap<String, usize>, key: String, item: T) {
    match at.get(&key) {
        Some(&i) => items[i] = item,
        None => {
            at.insert(key, items.len());
            items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;
    use crate::store::{Flag, MemoryStore};
    use crate::time::parse_rfc3339;

    fn resource(id: &str, tenant: &str, product: &str) -> Resource {
        serde_json::from_value(serde_json::json!({
            "id": id, "tenant": tenant, "product": product, "billing": "postpaid",
            "created_at": "2026-01-01T00:00:00Z", "holds": [], "released_holds": [],
            "state": "active", "copies": [], "history": [],
        }))
        .expect("test resource")
    }

    fn ts(s: &str) -> crate::time::Timestamp {
        parse_rfc3339(s).unwrap()
    }

    fn outcome(status: &str) -> EventOutcome {
        EventOutcome { status: status.into(), resource: None }
    }

    fn rec(seq: u64) -> AuditRecord {
        AuditRecord::seal(seq, ts("2026-01-01T00:00:00Z"), "event.applied", None, None, serde_json::json!({}), "0")
    }

    /// Sets merged one after another, then settled in one commit, leave the
    /// store as the same sets committed one by one would: later versions
    /// win, order-dependent parts keep their order.
    #[test]
    fn a_merged_group_commits_as_its_parts_in_turn() {
        let sets = || {
            vec![
                WriteSet {
                    resources: vec![(resource("r1", "t1", "a"), Some(ts("2026-01-05T00:00:00Z")))],
                    events: vec![("e1".into(), outcome("applied"))],
                    audit: vec![rec(2)],
                    flags: vec![(Flag::Paused, true)],
                    ..Default::default()
                },
                WriteSet {
                    resources: vec![
                        (resource("r1", "t1", "b"), None),
                        (resource("r2", "t1", "a"), Some(ts("2026-01-02T00:00:00Z"))),
                    ],
                    tenants: vec![("t1".into(), TenantHolds::default())],
                    audit: vec![rec(3)],
                    flags: vec![(Flag::Paused, false), (Flag::ClockAnomaly, true)],
                    clock: Some(ts("2026-01-01T00:00:00Z")),
                    ..Default::default()
                },
                WriteSet {
                    resources: vec![(resource("r2", "t1", "c"), Some(ts("2026-01-03T00:00:00Z")))],
                    audit: vec![rec(4)],
                    outbox_done_through: Some(1),
                    clock: Some(ts("2026-01-02T00:00:00Z")),
                    ..Default::default()
                },
            ]
        };
        // Record 1 is in the store (and the file) before the group: the
        // group trims it.
        let before = || WriteSet { audit: vec![rec(1)], ..Default::default() };
        let one_by_one = MemoryStore::new();
        one_by_one.commit(before()).unwrap();
        for w in sets() {
            one_by_one.commit(w).unwrap();
        }
        let merged = MemoryStore::new();
        merged.commit(before()).unwrap();
        let mut p = Pending::default();
        for w in sets() {
            p.merge(w);
        }
        assert_eq!(p.w.resources.len(), 2);
        merged.commit(p.take()).unwrap();
        assert!(p.is_empty());
        let far = ts("2030-01-01T00:00:00Z");
        for s in [&one_by_one, &merged] {
            assert_eq!(s.resource("r1").unwrap().unwrap().product, "b");
            assert_eq!(s.resource("r2").unwrap().unwrap().product, "c");
            assert_eq!(s.due(far, 10).unwrap(), vec![(ts("2026-01-03T00:00:00Z"), "r2".to_string())]);
            assert_eq!(s.event("e1").unwrap(), Some(outcome("applied")));
            assert!(!s.flag(Flag::Paused).unwrap());
            assert!(s.flag(Flag::ClockAnomaly).unwrap());
            assert_eq!(s.clock().unwrap(), Some(ts("2026-01-02T00:00:00Z")));
            assert_eq!(s.audit_head().unwrap().seq, 4);
            assert_eq!(s.outbox_after(0).unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
            assert_eq!(s.stats().unwrap(), one_by_one.stats().unwrap());
        }
    }

    /// Before a settle, reads see the pending writes first, then the store.
    #[test]
    fn reads_see_pending_writes_before_the_store() {
        let store = MemoryStore::new();
        store
            .commit(WriteSet {
                resources: vec![(resource("old", "t1", "a"), None), (resource("r1", "t1", "a"), None)],
                events: vec![("e0".into(), outcome("applied"))],
                ..Default::default()
            })
            .unwrap();
        let mut p = Pending::default();
        assert_eq!(p.resource(&store, "r1").unwrap().unwrap().product, "a");
        p.merge(WriteSet {
            resources: vec![
                (resource("r1", "t1", "b"), Some(ts("2026-01-01T00:00:00Z"))),
                (resource("new", "t1", "a"), None),
                (resource("other", "t2", "a"), None),
            ],
            events: vec![("e1".into(), outcome("rejected"))],
            tenants: vec![("t1".into(), TenantHolds::default())],
            ..Default::default()
        });
        assert_eq!(p.resource(&store, "r1").unwrap().unwrap().product, "b");
        assert!(store.resource("new").unwrap().is_none());
        assert!(p.resource(&store, "new").unwrap().is_some());
        assert_eq!(p.event(&store, "e0").unwrap(), Some(outcome("applied")));
        assert_eq!(p.event(&store, "e1").unwrap(), Some(outcome("rejected")));
        assert_eq!(p.event(&store, "e2").unwrap(), None);
        assert_eq!(p.tenant_resources(&store, "t1").unwrap(), vec!["new", "old", "r1"]);
        assert_eq!(p.tenant_resources(&store, "t2").unwrap(), vec!["other"]);
        assert_eq!(p.tenant_holds(&store, "t1").unwrap(), TenantHolds::default());
    }
}
