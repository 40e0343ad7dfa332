//! An in-memory engine: ordered maps behind one mutex, holding typed values.
//! For tests and the engine's own unit tests (no directory, no file lock,
//! nothing to clean up); the conformance suite holds it to the same
//! contract as the sled engine. It keeps nothing past the process:
//! [`Store::flush`] has nothing to make durable and returns at once.

use super::hold_index::{self, HoldCounts, HoldEntry, HoldFilter, HoldKey};
use super::indexes;
use super::personal::{self, OpenRequest, SubjectKey};
use super::record::{DueKey, RecordError};
use super::{EventOutcome, Flag, Store, StoreError, StoreStats, WriteSet};
use crate::audit::{AuditHead, AuditRecord};
use crate::domain::guard::GuardState;
use crate::domain::lifecycle::{Resource, TenantHolds};
use crate::domain::privacy::Subject;
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// The in-memory implementation of [`Store`]. Every call takes the one
/// lock, so a commit is seen whole or not at all; callbacks run after the
/// lock is released, on a copy, so they may call the store again.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// Everything the sled engine keeps, by the same keys, as typed values.
#[derive(Default)]
struct State {
    /// By resource id: the resource and its due time (the index's entry).
    resources: BTreeMap<String, (Resource, Option<Timestamp>)>,
    /// The deadline index, in the order of the sled engine's keys.
    due: BTreeSet<DueKey>,
    /// Resource ids by tenant.
    tenants: BTreeMap<String, BTreeSet<String>>,
    tenant_holds: BTreeMap<String, TenantHolds>,
    certificates: BTreeMap<String, serde_json::Value>,
    events: BTreeMap<String, EventOutcome>,
    /// Audit records by seq.
    outbox: BTreeMap<u64, AuditRecord>,
    audit_head: Option<AuditHead>,
    clock: Option<Timestamp>,
    guard: Option<GuardState>,
    flags: BTreeMap<Flag, bool>,
    /// The held-or-deleting index (see `indexes.rs`), by id.
    held: BTreeSet<String>,
    /// Deletion starts the guard counts, as the sled engine keys them
    /// (rounded up to the millisecond).
    starts: BTreeSet<DueKey>,
    /// Unsettled resources by product.
    products: BTreeMap<String, u64>,
    /// Records that may need bringing up to date, by id.
    migrate: BTreeSet<String>,
    /// The holds in force (see `hold_index.rs`).
    holds: BTreeMap<HoldKey, crate::domain::lifecycle::Hold>,
    /// The same, by authority.
    by_authority: BTreeSet<(String, HoldKey)>,
    /// Review dates not yet reported, in milliseconds rounded up.
    reviews: BTreeSet<(i64, HoldKey)>,
    /// Subjects (personal data) by key, with their due time.
    subjects: BTreeMap<SubjectKey, (Subject, Option<Timestamp>)>,
    /// The subjects' deadline index: milliseconds (rounded down), key.
    subject_due: BTreeSet<(i64, SubjectKey)>,
    /// The subject of every request.
    request_owners: BTreeMap<String, SubjectKey>,
    /// Requests not yet closed, by id.
    open: BTreeMap<String, OpenRequest>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Deadline index entries from `start` on, in order, while `keep` holds
    /// for their time, at most `limit` (`due`, `due_after`, `due_before`).
    fn due_entries(
        &self,
        start: std::ops::Bound<DueKey>,
        keep: impl Fn(Timestamp) -> bool,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let st = self.lock()?;
        let mut out = Vec::new();
        for k in st.due.range((start, std::ops::Bound::Unbounded)) {
            let t = entry_at(k)?;
            if !keep(t) || out.len() >= limit {
                break;
            }
            out.push((t, k.resource.clone()));
        }
        Ok(out)
    }

    /// The state. Nothing panics while holding the lock (commit mutates
    /// only maps, callbacks run outside it), so a poisoned lock means
    /// something unforeseen: refuse rather than read a half-applied commit.
    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Db("the in-memory store's lock is poisoned".into()))
    }
}

/// A subject's erasure starts the guard counts, keyed as the sled engine
/// keys them (`personal::start_keys`).
fn subject_starts(s: &Subject) -> Vec<DueKey> {
    let id = crate::domain::guard::subject_candidate(&s.tenant, &s.id);
    s.guard_starts().into_iter().map(|t| DueKey { millis: indexes::ceil_millis(t), resource: id.clone() }).collect()
}

/// A subjects' deadline entry's time, from its milliseconds.
fn subject_due_at(ms: i64, key: &SubjectKey) -> Result<Timestamp, StoreError> {
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Decode {
        key: format!("subject due {ms} {}", key.display()),
        reason: RecordError::DueKey,
    })
}

/// A deadline entry's time; as the sled engine, an entry whose time cannot
/// be represented is a decode error.
fn entry_at(k: &DueKey) -> Result<Timestamp, StoreError> {
    k.at().ok_or_else(|| StoreError::Decode {
        key: format!("d/{}/{}", k.millis, k.resource),
        reason: RecordError::DueKey,
    })
}

impl State {
    /// Takes the holds `entries` out of the index of holds.
    fn unindex_holds(&mut self, entries: Vec<HoldEntry>) {
        for e in entries {
            self.by_authority.remove(&(e.hold.authority.clone(), e.key.clone()));
            if let Some(ms) = hold_index::pending_review(&e.hold) {
                self.reviews.remove(&(ms, e.key.clone()));
            }
            self.holds.remove(&e.key);
        }
    }

    /// Puts the holds `entries` into the index of holds.
    fn index_holds(&mut self, entries: Vec<HoldEntry>) {
        for e in entries {
            self.by_authority.insert((e.hold.authority.clone(), e.key.clone()));
            if let Some(ms) = hold_index::pending_review(&e.hold) {
                self.reviews.insert((ms, e.key.clone()));
            }
            self.holds.insert(e.key, e.hold);
        }
    }

    /// Takes `r`'s entries out of the secondary indexes.
    fn unindex(&mut self, r: &Resource) {
        self.unindex_holds(hold_index::of_resource(r));
        self.held.remove(&r.id);
        self.migrate.remove(&r.id);
        if let Some(t) = indexes::guard_start(r) {
            self.starts.remove(&DueKey { millis: indexes::ceil_millis(t), resource: r.id.clone() });
        }
        indexes::tally_product(&mut self.products, r, false);
    }

    /// Puts `r`'s entries into the secondary indexes.
    fn index(&mut self, r: &Resource) {
        self.index_holds(hold_index::of_resource(r));
        if indexes::held_or_deleting(r) {
            self.held.insert(r.id.clone());
        }
        if indexes::needs_migration(r) {
            self.migrate.insert(r.id.clone());
        }
        if let Some(t) = indexes::guard_start(r) {
            self.starts.insert(DueKey { millis: indexes::ceil_millis(t), resource: r.id.clone() });
        }
        indexes::tally_product(&mut self.products, r, true);
    }
}

impl Store for MemoryStore {
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError> {
        Ok(self.lock()?.resources.get(id).map(|(r, _)| r.clone()))
    }

    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError> {
        Ok(self.lock()?.events.get(event_id).cloned())
    }

    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.due_entries(std::ops::Bound::Unbounded, |t| t <= now, limit)
    }

    fn due_after(
        &self,
        after: (Timestamp, &str),
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.due_entries(std::ops::Bound::Excluded(DueKey::new(after.0, after.1)), |t| t <= now, limit)
    }

    fn next_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let st = self.lock()?;
        let start = DueKey { millis: now.timestamp_millis().saturating_add(1), resource: String::new() };
        Ok(st.due.range(start..).filter_map(DueKey::at).find(|t| *t > now))
    }

    fn audit_head(&self) -> Result<AuditHead, StoreError> {
        Ok(self.lock()?.audit_head.clone().unwrap_or_else(AuditHead::genesis))
    }

    fn outbox_after(&self, after: u64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.lock()?.outbox.range(after.saturating_add(1)..).map(|(_, r)| r.clone()).collect())
    }

    fn clock(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.lock()?.clock)
    }

    fn resource_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.resources.len() as u64)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let st = self.lock()?;
        let mut stats = StoreStats::default();
        for (r, _) in st.resources.values() {
            stats.count_resource(r);
        }
        stats.pending_deadlines = st.due.len() as u64;
        stats.next_deadline = st.due.first().and_then(DueKey::at);
        Ok(stats)
    }

    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError> {
        let all: Vec<Resource> = self.lock()?.resources.values().map(|(r, _)| r.clone()).collect();
        all.into_iter().for_each(f);
        Ok(())
    }

    fn resources_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Resource, Option<Timestamp>)>, StoreError> {
        use std::ops::Bound;
        let st = self.lock()?;
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.to_string()));
        Ok(st.resources.range((start, Bound::Unbounded)).take(limit).map(|(_, v)| v.clone()).collect())
    }

    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.lock()?.tenants.get(tenant).map(|ids| ids.iter().cloned().collect()).unwrap_or_default())
    }

    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError> {
        Ok(self.lock()?.tenant_holds.get(tenant).cloned().unwrap_or_default())
    }

    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self.lock()?.certificates.get(resource).cloned())
    }

    fn flag(&self, flag: Flag) -> Result<bool, StoreError> {
        Ok(self.lock()?.flags.get(&flag).copied().unwrap_or(false))
    }

    fn guard_state(&self) -> Result<GuardState, StoreError> {
        Ok(self.lock()?.guard.clone().unwrap_or_default())
    }

    fn commit(&self, w: WriteSet) -> Result<(), StoreError> {
        let mut guard = self.lock()?;
        let st = &mut *guard;
        // As the sled engine: the index entry removed for a resource is the
        // one of the version stored before this write set.
        let stored: Vec<Option<Option<Timestamp>>> =
            w.resources.iter().map(|(r, _)| st.resources.get(&r.id).map(|(_, due)| *due)).collect();
        for (r, _) in &w.resources {
            // The secondary indexes follow the record, as in the sled engine.
            if let Some((old, _)) = st.resources.get(&r.id) {
                let old = old.clone();
                st.unindex(&old);
            }
            st.index(r);
        }
        for ((r, due), stored) in w.resources.into_iter().zip(stored) {
            match stored {
                Some(old) => {
                    if let Some(t) = old {
                        st.due.remove(&DueKey::new(t, &r.id));
                    }
                }
                None => {
                    st.tenants.entry(r.tenant.clone()).or_default().insert(r.id.clone());
                }
            }
            if let Some(t) = due {
                st.due.insert(DueKey::new(t, &r.id));
            }
            st.resources.insert(r.id.clone(), (r, due));
        }
        // The last version of each tenant's holds in the set is the one
        // kept, its index entries replacing those of the one stored.
        let tenants: BTreeMap<String, TenantHolds> = w.tenants.into_iter().collect();
        for (tenant, holds) in &tenants {
            if let Some(old) = st.tenant_holds.get(tenant) {
                let old = hold_index::of_tenant(tenant, old);
                st.unindex_holds(old);
            }
            st.index_holds(hold_index::of_tenant(tenant, holds));
        }
        st.tenant_holds.extend(tenants);
        for (subject, due) in w.subjects {
            let key = SubjectKey::of(&subject);
            if let Some((old, old_due)) = st.subjects.remove(&key) {
                if let Some(t) = old_due {
                    st.subject_due.remove(&(t.timestamp_millis(), key.clone()));
                }
                for r in personal::open_requests(&old) {
                    st.open.remove(&r.id);
                }
                for k in subject_starts(&old) {
                    st.starts.remove(&k);
                }
            }
            st.starts.extend(subject_starts(&subject));
            if let Some(t) = due {
                st.subject_due.insert((t.timestamp_millis(), key.clone()));
            }
            for r in &subject.requests {
                st.request_owners.insert(r.id.clone(), key.clone());
            }
            for r in personal::open_requests(&subject) {
                st.open.insert(r.id.clone(), r);
            }
            st.subjects.insert(key, (subject, due));
        }
        st.certificates.extend(w.certificates);
        st.flags.extend(w.flags);
        st.events.extend(w.events);
        // Records confirmed in the file are those stored before this write
        // set (as the sled engine reads them), removed after its new ones
        // are added.
        let done: Vec<u64> = match w.outbox_done_through {
            Some(done) => st.outbox.range(..=done).map(|(seq, _)| *seq).collect(),
            None => Vec::new(),
        };
        if let Some(last) = w.audit.last() {
            st.audit_head = Some(AuditHead { seq: last.seq, hash: last.hash.clone() });
        }
        st.outbox.extend(w.audit.into_iter().map(|r| (r.seq, r)));
        for seq in done {
            st.outbox.remove(&seq);
        }
        if let Some(t) = w.clock {
            st.clock = Some(t);
        }
        if let Some(g) = w.guard {
            st.guard = Some(g);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn due_before(
        &self,
        until: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let start = after.map_or(std::ops::Bound::Unbounded, |(t, id)| std::ops::Bound::Excluded(DueKey::new(t, id)));
        self.due_entries(start, |t| t < until, limit)
    }

    fn held_or_deleting(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        use std::ops::Bound;
        let st = self.lock()?;
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.to_string()));
        Ok(st.held.range((start, Bound::Unbounded)).take(limit).cloned().collect())
    }

    fn products_in_use(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self.lock()?.products.clone())
    }

    fn needing_migration(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock()?.migrate.iter().cloned().collect())
    }

    fn deletions_started_after(&self, since: Timestamp) -> Result<Vec<Timestamp>, StoreError> {
        let st = self.lock()?;
        let from = DueKey { millis: since.timestamp_millis(), resource: String::new() };
        Ok(st.starts.range(from..).filter_map(DueKey::at).filter(|t| *t > since).collect())
    }

    fn holds(&self, filter: &HoldFilter, after: Option<&HoldKey>, limit: usize) -> Result<Vec<HoldEntry>, StoreError> {
        use std::ops::Bound;
        let st = self.lock()?;
        let start = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone()));
        let entry = |key: &HoldKey| st.holds.get(key).map(|hold| HoldEntry { key: key.clone(), hold: hold.clone() });
        let found: Vec<HoldEntry> = match &filter.authority {
            None => st
                .holds
                .range((start, Bound::Unbounded))
                .map(|(key, hold)| HoldEntry { key: key.clone(), hold: hold.clone() })
                .filter(|e| filter.admits(e))
                .take(limit)
                .collect(),
            Some(a) => {
                let start = match after {
                    Some(k) => Bound::Excluded((a.clone(), k.clone())),
                    None => Bound::Included((a.clone(), HoldKey::default())),
                };
                st.by_authority
                    .range((start, Bound::Unbounded))
                    .take_while(|(by, _)| by == a)
                    .filter_map(|(_, key)| entry(key))
                    .filter(|e| filter.admits(e))
                    .take(limit)
                    .collect()
            }
        };
        Ok(found)
    }

    fn reviews_due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, HoldKey)>, StoreError> {
        let st = self.lock()?;
        let mut out = Vec::new();
        for (ms, key) in st.reviews.iter().take(limit) {
            let t = review_at(*ms, key)?;
            if t > now {
                break;
            }
            out.push((t, key.clone()));
        }
        Ok(out)
    }

    fn next_review_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let st = self.lock()?;
        let from = (now.timestamp_millis().saturating_add(1), HoldKey::default());
        st.reviews.range(from..).next().map(|(ms, key)| review_at(*ms, key)).transpose()
    }

    fn hold_counts(&self) -> Result<HoldCounts, StoreError> {
        let st = self.lock()?;
        let reported = st.holds.values().filter(|h| h.review_reported_at.is_some()).count();
        Ok(HoldCounts { in_force: st.holds.len() as u64, review_due: reported as u64 })
    }

    fn subject(&self, key: &SubjectKey) -> Result<Option<Subject>, StoreError> {
        Ok(self.lock()?.subjects.get(key).map(|(s, _)| s.clone()))
    }

    fn tenant_subjects(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let st = self.lock()?;
        let from = SubjectKey { tenant: tenant.to_string(), subject: String::new() };
        Ok(st.subjects.range(from..).take_while(|(k, _)| k.tenant == tenant).map(|(k, _)| k.subject.clone()).collect())
    }

    fn subjects_due(
        &self,
        after: Option<(Timestamp, &SubjectKey)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, SubjectKey)>, StoreError> {
        use std::ops::Bound;
        let st = self.lock()?;
        let start = match after {
            Some((t, k)) => Bound::Excluded((t.timestamp_millis(), k.clone())),
            None => Bound::Unbounded,
        };
        let until = until.timestamp_millis();
        let mut out = Vec::new();
        for (ms, key) in st.subject_due.range((start, Bound::Unbounded)) {
            if *ms > until || out.len() >= limit {
                break;
            }
            out.push((subject_due_at(*ms, key)?, key.clone()));
        }
        Ok(out)
    }

    fn next_subject_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let st = self.lock()?;
        let after = now.timestamp_millis();
        match st.subject_due.iter().find(|(ms, _)| *ms > after) {
            Some((ms, key)) => Ok(Some(subject_due_at(*ms, key)?)),
            None => Ok(None),
        }
    }

    fn request_owner(&self, request_id: &str) -> Result<Option<SubjectKey>, StoreError> {
        Ok(self.lock()?.request_owners.get(request_id).cloned())
    }

    fn requests_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        use std::ops::Bound;
        let st = self.lock()?;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        Ok(st
            .request_owners
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(id, k)| (id.clone(), k.clone()))
            .collect())
    }

    fn open_requests(&self) -> Result<Vec<OpenRequest>, StoreError> {
        Ok(self.lock()?.open.values().cloned().collect())
    }
}

/// A review entry's time; as the sled engine, one whose time cannot be
/// represented is a decode error.
fn review_at(ms: i64, key: &HoldKey) -> Result<Timestamp, StoreError> {
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Decode {
        key: format!("v/{ms}/{}", String::from_utf8_lossy(&key.tail())),
        reason: RecordError::DueKey,
    })
}
