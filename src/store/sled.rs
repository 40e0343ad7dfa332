//! The sled engine: the daemon's database. The only file that imports sled
//! (engineering-notes: sled lost unflushed writes on a plain crash, and may
//! be replaced one day), writing the keys and records of [`super::record`].
//! A [`WriteSet`] is one sled batch; [`Store::flush`] is sled's fsync.

use super::hold_index::{self, HoldCounts, HoldEntry, HoldFilter, HoldKey};
use super::indexes;
use super::personal::{self, keys as pkeys, OpenRequest, SubjectKey, SubjectRecord};
use super::record::{self, DueKey, RecordError, ResourceRecord};
use super::{EventOutcome, Flag, Store, StoreError, StoreStats, WriteSet};
use crate::audit::{AuditHead, AuditRecord};
use crate::domain::lifecycle::{Resource, TenantHolds};
use crate::domain::privacy::Subject;
use crate::time::Timestamp;
use serde::Deserialize;
use std::path::Path;

/// The sled implementation.
pub struct SledStore {
    db: sled::Db,
    /// The counters as last committed (see [`record::StatsRecord`]); only
    /// the engine's single writer changes them, inside `commit`.
    counts: std::sync::Mutex<StoreStats>,
    /// Unsettled resources by product as last committed (`m/products`,
    /// see `indexes.rs`); changed only inside `commit`.
    products: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// The hold counts as last committed (`m/holds`, see `hold_index.rs`);
    /// changed only inside `commit`.
    hold_counts: std::sync::Mutex<HoldCounts>,
}

fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(Box::new(e))
}

fn decode_err(key: &[u8], reason: RecordError) -> StoreError {
    StoreError::Decode { key: String::from_utf8_lossy(key).into_owned(), reason }
}

/// The resource id of an `r/` key (ids are UTF-8: [`crate::ids`]).
fn resource_id(k: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(&k[record::RESOURCE_PREFIX.len()..]).map_err(|_| decode_err(k, RecordError::Field("key")))
}

fn due_entry(k: &[u8]) -> Result<(Timestamp, String), StoreError> {
    DueKey::decode(k).and_then(|d| Some((d.at()?, d.resource))).ok_or_else(|| decode_err(k, RecordError::DueKey))
}

impl SledStore {
    /// Opens (or creates) the database under `dir`. sled takes an exclusive
    /// lock: a second daemon on the same state dir fails here.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<SledStore, StoreError> {
        // sled would create it as the umask says; the database holds what
        // events said, so it is the daemon user's only (like the state dir).
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(db_err)?;
        let mut store =
            SledStore { db, counts: Default::default(), products: Default::default(), hold_counts: Default::default() };
        store.counts = std::sync::Mutex::new(store.stored_counts()?);
        let (products, holds) = store.stored_indexes()?;
        store.products = std::sync::Mutex::new(products);
        store.hold_counts = std::sync::Mutex::new(holds);
        Ok(store)
    }

    /// The counters as stored, or recounted (one scan) where a database
    /// has none yet (written by an older build) or none this build trusts;
    /// a recount is stored, so it happens once.
    fn stored_counts(&self) -> Result<StoreStats, StoreError> {
        if let Some(counts) = self.get::<record::StatsRecord>(record::STATS_KEY)?.and_then(record::StatsRecord::counts)
        {
            return Ok(counts);
        }
        let mut st = StoreStats::default();
        self.for_each_resource(&mut |r| st.count_resource(&r))?;
        st.pending_deadlines = self.db.scan_prefix(record::DUE_PREFIX).keys().count() as u64;
        self.db.insert(record::STATS_KEY, record::encode(&record::StatsRecord::of(&st))).map_err(db_err)?;
        Ok(st)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, StoreStats> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, id: &str) -> Result<Option<ResourceRecord>, StoreError> {
        let key = record::resource_key(id);
        match self.db.get(&key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => ResourceRecord::decode(id, &v).map(Some).map_err(|e| decode_err(&key, e)),
        }
    }

    fn subject_record(&self, key: &SubjectKey) -> Result<Option<SubjectRecord>, StoreError> {
        let k = pkeys::subject(key);
        match self.db.get(&k).map_err(db_err)? {
            None => Ok(None),
            Some(v) => SubjectRecord::decode(&v).map(Some).map_err(|e| decode_err(&k, e)),
        }
    }

    /// Removes the outbox's records up to and including `done`: every chunk
    /// keyed at or before it, and the records at or before it of the one
    /// chunk that may hold both sides (rewritten under its key with the
    /// rest). The engine trims through the last record of a commit, so
    /// that chunk is rare; it is handled so that the contract holds
    /// whatever seq a caller gives.
    fn trim_outbox(&self, batch: &mut sled::Batch, done: u64) -> Result<(), StoreError> {
        for kv in self.db.range(record::outbox_key(0)..=record::outbox_key(done)) {
            let (k, _) = kv.map_err(db_err)?;
            batch.remove(k);
        }
        let next = self.db.range(record::outbox_key(done.saturating_add(1))..=record::outbox_key(u64::MAX)).next();
        if let Some(kv) = next {
            let (k, v) = kv.map_err(db_err)?;
            let chunk = record::decode_audit(&v).map_err(|e| decode_err(&k, e))?;
            if chunk.first().is_some_and(|r| r.seq <= done) {
                let rest: Vec<AuditRecord> = chunk.into_iter().filter(|r| r.seq > done).collect();
                for (k, v) in record::outbox_chunks(&rest) {
                    batch.insert(k, v);
                }
            }
        }
        Ok(())
    }

    /// Writes subjects, keeping their indexes equal to the records: the old
    /// due entry and open requests of the version stored are replaced by
    /// the new one's; every request is in the request index.
    fn write_subjects(
        &self,
        batch: &mut sled::Batch,
        subjects: &[(Subject, Option<Timestamp>)],
    ) -> Result<(), StoreError> {
        for (s, due) in subjects {
            let key = SubjectKey::of(s);
            if let Some(old) = self.subject_record(&key)? {
                if let Some(t) = old.due {
                    batch.remove(pkeys::due(t, &key));
                }
                for r in personal::open_requests(&old.subject) {
                    batch.remove(pkeys::open(&r.id));
                }
                for k in personal::start_keys(&old.subject) {
                    batch.remove(k);
                }
            }
            for k in personal::start_keys(s) {
                batch.insert(k, &[] as &[u8]);
            }
            if let Some(t) = due {
                batch.insert(pkeys::due(*t, &key), &[] as &[u8]);
            }
            for r in &s.requests {
                batch.insert(pkeys::request(&r.id), pkeys::owner_value(&key));
            }
            for r in personal::open_requests(s) {
                batch.insert(pkeys::open(&r.id), record::encode(&r));
            }
            batch.insert(pkeys::subject(&key), record::encode(&SubjectRecord { v: 1, due: *due, subject: s.clone() }));
        }
        Ok(())
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => record::decode(&v).map(Some).map_err(|e| decode_err(key, e)),
        }
    }

    /// Every resource record, in id order.
    fn for_each_record(&self, f: &mut dyn FnMut(ResourceRecord)) -> Result<(), StoreError> {
        for kv in self.db.scan_prefix(record::RESOURCE_PREFIX) {
            let (k, v) = kv.map_err(db_err)?;
            f(ResourceRecord::decode(resource_id(&k)?, &v).map_err(|e| decode_err(&k, e))?);
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError> {
        Ok(self.record(id)?.map(|r| r.resource))
    }

    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError> {
        let key = record::event_key(event_id);
        match self.db.get(&key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => record::decode_outcome(&v).map(Some).map_err(|e| decode_err(&key, e)),
        }
    }

    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.due_entries(std::ops::Bound::Included(record::DUE_PREFIX.to_vec()), |t| t <= now, limit)
    }

    fn due_after(
        &self,
        after: (Timestamp, &str),
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.due_entries(std::ops::Bound::Excluded(DueKey::new(after.0, after.1).encode()), |t| t <= now, limit)
    }

    fn next_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        // Every id at the next millisecond and later.
        let start = record::due_prefix_from(now.timestamp_millis().saturating_add(1));
        for kv in self.db.range(start..) {
            let (k, _) = kv.map_err(db_err)?;
            if !k.starts_with(record::DUE_PREFIX) {
                break;
            }
            if let Some(t) = DueKey::decode(&k).and_then(|d| d.at()) {
                if t > now {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    fn audit_head(&self) -> Result<AuditHead, StoreError> {
        Ok(self.get(record::AUDIT_HEAD_KEY)?.unwrap_or_else(AuditHead::genesis))
    }

    fn outbox_after(&self, after: u64) -> Result<Vec<AuditRecord>, StoreError> {
        // A chunk is keyed by its last seq: the first key past `after`
        // is the first chunk holding a record past it (and maybe some
        // before, which are left out).
        let mut out = Vec::new();
        for kv in self.db.range(record::outbox_key(after.saturating_add(1))..=record::outbox_key(u64::MAX)) {
            let (k, v) = kv.map_err(db_err)?;
            let chunk = record::decode_audit(&v).map_err(|e| decode_err(&k, e))?;
            out.extend(chunk.into_iter().filter(|r| r.seq > after));
        }
        Ok(out)
    }

    fn clock(&self) -> Result<Option<Timestamp>, StoreError> {
        self.get(record::CLOCK_KEY)
    }

    fn resource_count(&self) -> Result<u64, StoreError> {
        Ok(self.counts().resources.values().sum())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut st = self.counts().clone();
        // The index is ordered by due time: its first key is the earliest.
        if let Some(k) = self.db.scan_prefix(record::DUE_PREFIX).keys().next() {
            st.next_deadline = DueKey::decode(&k.map_err(db_err)?).and_then(|d| d.at());
        }
        Ok(st)
    }

    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError> {
        self.for_each_record(&mut |rec| f(rec.resource))
    }

    fn resources_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Resource, Option<Timestamp>)>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(id) => Bound::Excluded(sled::IVec::from(record::resource_key(id))),
            None => Bound::Included(sled::IVec::from(record::RESOURCE_PREFIX)),
        };
        let mut out = Vec::new();
        for kv in self.db.range::<sled::IVec, _>((start, Bound::Unbounded)) {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(record::RESOURCE_PREFIX) || out.len() >= limit {
                break;
            }
            let rec = ResourceRecord::decode(resource_id(&k)?, &v).map_err(|e| decode_err(&k, e))?;
            out.push((rec.resource, rec.due));
        }
        Ok(out)
    }

    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let prefix = record::tenant_prefix(tenant);
        let mut out = Vec::new();
        for k in self.db.scan_prefix(&prefix).keys() {
            let k = k.map_err(db_err)?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError> {
        Ok(self.get(&record::tenant_holds_key(tenant))?.unwrap_or_default())
    }

    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(&record::certificate_key(resource))
    }

    fn flag(&self, flag: Flag) -> Result<bool, StoreError> {
        Ok(self.get(&record::flag_key(flag))?.unwrap_or(false))
    }

    fn guard_state(&self) -> Result<crate::domain::guard::GuardState, StoreError> {
        Ok(self.get(record::GUARD_KEY)?.unwrap_or_default())
    }

    fn commit(&self, w: WriteSet) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut counts = (!w.resources.is_empty()).then(|| self.counts().clone());
        let mut products = (!w.resources.is_empty()).then(|| self.products().clone());
        let mut holds = (!w.resources.is_empty() || !w.tenants.is_empty()).then(|| *self.hold_tally());
        for (r, due) in &w.resources {
            // Keep the index equal to the records' due times: drop the old
            // entry, add the new; count the old record out, the new in.
            let counts = counts.as_mut().expect("counted when resources are written");
            let stored = self.record(&r.id)?;
            let tallies = Tallies { products: products.as_mut(), holds: holds.as_mut() };
            self.reindex(&mut batch, tallies, stored.as_ref().map(|o| &o.resource), r);
            match stored {
                Some(old) => {
                    if let Some(t) = old.due {
                        batch.remove(DueKey::new(t, &r.id).encode());
                        counts.pending_deadlines = counts.pending_deadlines.saturating_sub(1);
                    }
                    counts.tally(&old.resource, false);
                }
                None => batch.insert(record::tenant_resource_key(&r.tenant, &r.id), &[] as &[u8]),
            }
            if let Some(t) = due {
                batch.insert(DueKey::new(*t, &r.id).encode(), &[] as &[u8]);
                counts.pending_deadlines += 1;
            }
            counts.tally(r, true);
            batch.insert(record::resource_key(&r.id), ResourceRecord::encode(r, *due));
        }
        // The last version of each tenant's holds in the set is the one
        // kept: its index entries replace those of the record stored.
        let tenants: std::collections::BTreeMap<&String, &TenantHolds> =
            w.tenants.iter().map(|(t, h)| (t, h)).collect();
        for (tenant, new) in tenants {
            let old = hold_index::of_tenant(tenant, &self.tenant_holds(tenant)?);
            let new = hold_index::of_tenant(tenant, new);
            reindex_holds(&mut batch, holds.as_mut(), &old, &new);
        }
        for (tenant, tenant_holds) in &w.tenants {
            batch.insert(record::tenant_holds_key(tenant), record::encode(tenant_holds));
        }
        for (id, cert) in &w.certificates {
            batch.insert(record::certificate_key(id), record::encode(cert));
        }
        for (flag, on) in &w.flags {
            batch.insert(record::flag_key(*flag), record::encode(on));
        }
        for (id, outcome) in &w.events {
            batch.insert(record::event_key(id), record::encode_outcome(outcome));
        }
        if let Some(done) = w.outbox_done_through {
            self.trim_outbox(&mut batch, done)?;
        }
        if let Some(last) = w.audit.last() {
            for (k, v) in record::outbox_chunks(&w.audit) {
                batch.insert(k, v);
            }
            batch.insert(record::AUDIT_HEAD_KEY, record::encode(&AuditHead { seq: last.seq, hash: last.hash.clone() }));
        }
        self.write_subjects(&mut batch, &w.subjects)?;
        if let Some(t) = w.clock {
            batch.insert(record::CLOCK_KEY, record::encode(&t));
        }
        if let Some(g) = &w.guard {
            batch.insert(record::GUARD_KEY, record::encode(g));
        }
        if let Some(c) = &counts {
            batch.insert(record::STATS_KEY, record::encode(&record::StatsRecord::of(c)));
        }
        if let Some(p) = &products {
            batch.insert(indexes::PRODUCTS_KEY, record::encode(&indexes::ProductsRecord::of(p)));
        }
        if let Some(h) = &holds {
            batch.insert(hold_index::HOLD_COUNTS_KEY, record::encode(h));
        }
        self.db.apply_batch(batch).map_err(db_err)?;
        if let Some(c) = counts {
            *self.counts() = c;
        }
        if let Some(p) = products {
            *self.products() = p;
        }
        if let Some(h) = holds {
            *self.hold_tally() = h;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(db_err)
    }

    fn due_before(
        &self,
        until: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some((t, id)) => Bound::Excluded(DueKey::new(t, id).encode()),
            None => Bound::Included(record::DUE_PREFIX.to_vec()),
        };
        self.due_entries(start, |t| t < until, limit)
    }

    fn held_or_deleting(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(id) => Bound::Excluded(indexes::held_key(id)),
            None => Bound::Included(indexes::HELD_PREFIX.to_vec()),
        };
        let mut out = Vec::new();
        for k in self.keys_from(indexes::HELD_PREFIX, start).take(limit) {
            let k = k?;
            let id = std::str::from_utf8(&k[indexes::HELD_PREFIX.len()..])
                .map_err(|_| decode_err(&k, RecordError::DueKey))?;
            out.push(id.to_owned());
        }
        Ok(out)
    }

    fn products_in_use(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        Ok(self.products().clone())
    }

    fn needing_migration(&self) -> Result<Vec<String>, StoreError> {
        let start = std::ops::Bound::Included(indexes::MIGRATE_PREFIX.to_vec());
        let mut out = Vec::new();
        for k in self.keys_from(indexes::MIGRATE_PREFIX, start) {
            let k = k?;
            let id = std::str::from_utf8(&k[indexes::MIGRATE_PREFIX.len()..])
                .map_err(|_| decode_err(&k, RecordError::DueKey))?;
            out.push(id.to_owned());
        }
        Ok(out)
    }

    fn deletions_started_after(&self, since: Timestamp) -> Result<Vec<Timestamp>, StoreError> {
        let start = std::ops::Bound::Included(indexes::starts_from(since.timestamp_millis()));
        let mut out = Vec::new();
        for k in self.keys_from(indexes::STARTS_PREFIX, start) {
            let k = k?;
            let t = indexes::start_at(&k).ok_or_else(|| decode_err(&k, RecordError::DueKey))?;
            if t > since {
                out.push(t);
            }
        }
        Ok(out)
    }

    fn holds(&self, filter: &HoldFilter, after: Option<&HoldKey>, limit: usize) -> Result<Vec<HoldEntry>, StoreError> {
        // The range that holds exactly the holds asked for: by place, or
        // by authority (then tenant, when both are given); where in its
        // keys the hold's place begins.
        let (prefix, after, tail_at) = match (&filter.authority, &filter.tenant) {
            (None, None) => (hold_index::HOLD_PREFIX.to_vec(), after.map(HoldKey::key), hold_index::HOLD_PREFIX.len()),
            (None, Some(t)) => (hold_index::tenant_prefix(t), after.map(HoldKey::key), hold_index::HOLD_PREFIX.len()),
            (Some(a), t) => (
                hold_index::authority_prefix(a, t.as_deref()),
                after.map(|k| hold_index::authority_key(a, k)),
                hold_index::authority_prefix(a, None).len(),
            ),
        };
        let start = match after {
            Some(k) if k >= prefix => std::ops::Bound::Excluded(sled::IVec::from(k)),
            _ => std::ops::Bound::Included(sled::IVec::from(prefix.as_slice())),
        };
        let mut out = Vec::new();
        for kv in self.db.range::<sled::IVec, _>((start, std::ops::Bound::Unbounded)) {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let key =
                HoldKey::from_tail(&k[tail_at..]).ok_or_else(|| decode_err(&k, RecordError::Field("hold key")))?;
            let hold = if filter.authority.is_some() {
                let place = key.key();
                let v = self.db.get(&place).map_err(db_err)?;
                let v = v.ok_or_else(|| decode_err(&k, RecordError::Field("hold missing from k/")))?;
                record::decode(&v).map_err(|e| decode_err(&place, e))?
            } else {
                record::decode(&v).map_err(|e| decode_err(&k, e))?
            };
            out.push(HoldEntry { key, hold });
        }
        Ok(out)
    }

    fn reviews_due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, HoldKey)>, StoreError> {
        let start = std::ops::Bound::Included(hold_index::REVIEW_PREFIX.to_vec());
        let mut out = Vec::new();
        for k in self.keys_from(hold_index::REVIEW_PREFIX, start) {
            let k = k?;
            let (t, key) = hold_index::review_of_key(&k).ok_or_else(|| decode_err(&k, RecordError::DueKey))?;
            if t > now || out.len() >= limit {
                break;
            }
            out.push((t, key));
        }
        Ok(out)
    }

    fn next_review_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let start = std::ops::Bound::Included(hold_index::reviews_from(now.timestamp_millis().saturating_add(1)));
        match self.keys_from(hold_index::REVIEW_PREFIX, start).next() {
            None => Ok(None),
            Some(k) => {
                let k = k?;
                let (t, _) = hold_index::review_of_key(&k).ok_or_else(|| decode_err(&k, RecordError::DueKey))?;
                Ok(Some(t))
            }
        }
    }

    fn hold_counts(&self) -> Result<HoldCounts, StoreError> {
        Ok(*self.hold_tally())
    }

    fn subject(&self, key: &SubjectKey) -> Result<Option<Subject>, StoreError> {
        Ok(self.subject_record(key)?.map(|r| r.subject))
    }

    fn tenant_subjects(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let prefix = pkeys::tenant_subjects(tenant);
        let mut ids = Vec::new();
        for kv in self.db.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(db_err)?;
            let id = std::str::from_utf8(&k[prefix.len()..]).map_err(|_| decode_err(&k, RecordError::Field("key")))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    fn subjects_due(
        &self,
        after: Option<(Timestamp, &SubjectKey)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, SubjectKey)>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some((t, k)) => Bound::Excluded(pkeys::due(t, k)),
            None => Bound::Included(pkeys::DUE_PREFIX.to_vec()),
        };
        let end = pkeys::due_from(until.timestamp_millis().saturating_add(1));
        let mut out = Vec::new();
        for kv in self.db.range::<Vec<u8>, _>((start, Bound::Excluded(end))) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv.map_err(db_err)?;
            out.push(pkeys::decode_due(&k).ok_or_else(|| decode_err(&k, RecordError::DueKey))?);
        }
        Ok(out)
    }

    fn next_subject_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let start = pkeys::due_from(now.timestamp_millis().saturating_add(1));
        match self.db.range(start..).next() {
            Some(kv) => {
                let (k, _) = kv.map_err(db_err)?;
                if !k.starts_with(pkeys::DUE_PREFIX) {
                    return Ok(None);
                }
                Ok(Some(pkeys::decode_due(&k).ok_or_else(|| decode_err(&k, RecordError::DueKey))?.0))
            }
            None => Ok(None),
        }
    }

    fn request_owner(&self, request_id: &str) -> Result<Option<SubjectKey>, StoreError> {
        let key = pkeys::request(request_id);
        match self.db.get(&key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(pkeys::owner)
                .map(Some)
                .ok_or_else(|| decode_err(&key, RecordError::Field("request owner"))),
        }
    }

    fn requests_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(pkeys::request(a)),
            None => Bound::Included(pkeys::REQUEST_PREFIX.to_vec()),
        };
        let mut out = Vec::new();
        for kv in self.db.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(pkeys::REQUEST_PREFIX) || out.len() >= limit {
                break;
            }
            let id = std::str::from_utf8(&k[pkeys::REQUEST_PREFIX.len()..]).ok();
            let owner = std::str::from_utf8(&v).ok().and_then(pkeys::owner);
            match (id, owner) {
                (Some(id), Some(owner)) => out.push((id.to_string(), owner)),
                _ => return Err(decode_err(&k, RecordError::Field("request index entry"))),
            }
        }
        Ok(out)
    }

    fn open_requests(&self) -> Result<Vec<OpenRequest>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(pkeys::OPEN_PREFIX) {
            let (k, v) = kv.map_err(db_err)?;
            out.push(record::decode(&v).map_err(|e| decode_err(&k, e))?);
        }
        Ok(out)
    }
}

/// What a commit counts beside the records: the products in use and the
/// holds (each `None` where the commit does not touch them).
struct Tallies<'a> {
    products: Option<&'a mut std::collections::BTreeMap<String, u64>>,
    holds: Option<&'a mut HoldCounts>,
}

/// Puts into `batch` what the index of holds needs when the holds `old`
/// are replaced by `new` (the old keys removed, then the new added: a sled
/// batch keeps the last operation on a key), and moves the counts.
fn reindex_holds(batch: &mut sled::Batch, counts: Option<&mut HoldCounts>, old: &[HoldEntry], new: &[HoldEntry]) {
    for (k, _) in old.iter().flat_map(hold_index::keys_of) {
        batch.remove(k);
    }
    for (k, v) in new.iter().flat_map(hold_index::keys_of) {
        batch.insert(k, v);
    }
    if let Some(counts) = counts {
        counts.tally(old, false);
        counts.tally(new, true);
    }
}

/// The secondary indexes of `indexes.rs`.
impl SledStore {
    fn products(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, u64>> {
        self.products.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold_tally(&self) -> std::sync::MutexGuard<'_, HoldCounts> {
        self.hold_counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts into `batch` what the secondary indexes need when the record
    /// of `new` replaces `old`: the old keys removed, then the new added
    /// (a sled batch keeps the last operation on a key), and the product
    /// and hold counts moved from the old record to the new.
    fn reindex(&self, batch: &mut sled::Batch, tallies: Tallies<'_>, old: Option<&Resource>, new: &Resource) {
        for k in old.map(indexes::keys_of).unwrap_or_default() {
            batch.remove(k);
        }
        for k in indexes::keys_of(new) {
            batch.insert(k, &[] as &[u8]);
        }
        let old_holds = old.map(hold_index::of_resource).unwrap_or_default();
        reindex_holds(batch, tallies.holds, &old_holds, &hold_index::of_resource(new));
        if let Some(products) = tallies.products {
            if let Some(old) = old {
                indexes::tally_product(products, old, false);
            }
            indexes::tally_product(products, new, true);
        }
    }

    /// The product and hold counts as stored, after building every
    /// secondary index (the index of holds included) from the records
    /// where the database has not got them in this build's version
    /// (written by an older build): once, at open, a thousand records a
    /// batch, the marker written last so an interrupted build is done
    /// again whole. Holds placed before an upgrade are indexed here, from
    /// the resources and the tenants' records.
    fn stored_indexes(&self) -> Result<(std::collections::BTreeMap<String, u64>, HoldCounts), StoreError> {
        let marker: Option<u32> = self.get(indexes::INDEXES_KEY)?;
        if marker == Some(indexes::INDEXES_VERSION) {
            let stored: Option<indexes::ProductsRecord> = self.get(indexes::PRODUCTS_KEY)?;
            let holds: Option<HoldCounts> = self.get(hold_index::HOLD_COUNTS_KEY)?;
            return Ok((stored.map(|p| p.products).unwrap_or_default(), holds.unwrap_or_default()));
        }
        for prefix in [
            indexes::HELD_PREFIX,
            indexes::STARTS_PREFIX,
            indexes::MIGRATE_PREFIX,
            hold_index::HOLD_PREFIX,
            hold_index::AUTHORITY_PREFIX,
            hold_index::REVIEW_PREFIX,
        ] {
            for k in self.db.scan_prefix(prefix).keys() {
                self.db.remove(k.map_err(db_err)?).map_err(db_err)?;
            }
        }
        let mut products = std::collections::BTreeMap::new();
        let mut holds = HoldCounts::default();
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        let mut full = |batch: &mut sled::Batch| -> Result<(), StoreError> {
            in_batch += 1;
            if in_batch == 1000 {
                self.db.apply_batch(std::mem::take(batch)).map_err(db_err)?;
                in_batch = 0;
            }
            Ok(())
        };
        for kv in self.db.scan_prefix(record::RESOURCE_PREFIX) {
            let (k, v) = kv.map_err(db_err)?;
            let rec = ResourceRecord::decode(resource_id(&k)?, &v).map_err(|e| decode_err(&k, e))?;
            let tallies = Tallies { products: Some(&mut products), holds: Some(&mut holds) };
            self.reindex(&mut batch, tallies, None, &rec.resource);
            full(&mut batch)?;
        }
        for kv in self.db.scan_prefix(record::TENANT_HOLDS_PREFIX) {
            let (k, v) = kv.map_err(db_err)?;
            let tenant = std::str::from_utf8(&k[record::TENANT_HOLDS_PREFIX.len()..])
                .map_err(|_| decode_err(&k, RecordError::Field("key")))?;
            let tenant_holds: TenantHolds = record::decode(&v).map_err(|e| decode_err(&k, e))?;
            reindex_holds(&mut batch, Some(&mut holds), &[], &hold_index::of_tenant(tenant, &tenant_holds));
            full(&mut batch)?;
        }
        for kv in self.db.scan_prefix(pkeys::SUBJECT_PREFIX) {
            let (k, v) = kv.map_err(db_err)?;
            let rec = SubjectRecord::decode(&v).map_err(|e| decode_err(&k, e))?;
            for k in personal::start_keys(&rec.subject) {
                batch.insert(k, &[] as &[u8]);
            }
            full(&mut batch)?;
        }
        batch.insert(indexes::PRODUCTS_KEY, record::encode(&indexes::ProductsRecord::of(&products)));
        batch.insert(hold_index::HOLD_COUNTS_KEY, record::encode(&holds));
        batch.insert(indexes::INDEXES_KEY, record::encode(&indexes::INDEXES_VERSION));
        self.db.apply_batch(batch).map_err(db_err)?;
        Ok((products, holds))
    }

    /// Deadline index entries from `start` on, in order, while `keep` holds
    /// for their time, at most `limit` (`due`, `due_after`, `due_before`).
    fn due_entries(
        &self,
        start: std::ops::Bound<Vec<u8>>,
        keep: impl Fn(Timestamp) -> bool,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let mut out = Vec::new();
        for k in self.keys_from(record::DUE_PREFIX, start) {
            let (t, id) = due_entry(&k?)?;
            if !keep(t) || out.len() >= limit {
                break;
            }
            out.push((t, id));
        }
        Ok(out)
    }

    /// Keys under `prefix` from `start` on (excluded or included), in order.
    fn keys_from(
        &self,
        prefix: &'static [u8],
        start: std::ops::Bound<Vec<u8>>,
    ) -> impl Iterator<Item = Result<sled::IVec, StoreError>> {
        let start = start.map(sled::IVec::from);
        self.db
            .range::<sled::IVec, _>((start, std::ops::Bound::Unbounded))
            .keys()
            .map(|k| k.map_err(db_err))
            .take_while(move |k| k.as_ref().map_or(true, |k| k.starts_with(prefix)))
    }
}

#[cfg(test)]
mod tests;
