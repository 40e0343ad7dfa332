//! Durable state, behind the project's own [`Store`] trait. This is the only
//! module that imports sled (engineering-notes: sled lost unflushed writes on
//! a plain crash, and may be replaced one day), so everything else speaks in
//! resources, deadlines and event ids.
//!
//! Layout: one sled tree, keys by prefix, every record versioned:
//! - `r/<resource>`: the resource and its due time (`{"v":1,"due":..,"resource":..}`)
//! - `d/<due millis, 8 bytes big-endian, sign-flipped>/<resource>`: the
//!   deadline index, ordered by due time, kept equal to each record's `due`
//!   by [`Store::commit`] itself (it removes the old key it reads)
//! - `t/<tenant>/<resource>`: the resources of a tenant
//! - `n/<tenant>`: holds placed on a whole tenant
//! - `c/<resource>`: the deletion certificate of a purged resource
//! - `e/<event_id>`: ids of events already handled, with their outcome
//! - `o/<seq, 8 bytes big-endian>`: audit records not yet confirmed in the
//!   audit file (the outbox)
//! - `m/audit_head`, `m/clock`: the audit chain head, the manual clock reading
//! - `m/guard`: the mass-deletion guard's held batch and last approval
//! - `f/<name>`: daemon-wide switches that stop deletions (`paused`,
//!   `clock_anomaly`, `guard_tripped`), kept across restarts
//!
//! A [`WriteSet`] is applied atomically (one sled batch). Nothing is durable
//! until [`Store::flush`] returns; callers flush before acknowledging an event
//! or calling an executor.

use crate::audit::{AuditHead, AuditRecord};
use crate::lifecycle::{Resource, TenantHolds};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A storage failure. Every one of them stops deletions (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (I/O, corruption, lock held by another process).
    #[error("database error: {0}")]
    Db(String),
    /// A stored record could not be decoded (unknown version or corrupt).
    #[error("stored record {key} cannot be read: {reason}")]
    Decode {
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// What became of an event id (so a repeat is answered `duplicate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOutcome {
    /// `applied` or `rejected`.
    pub status: String,
    /// The resource it concerned.
    pub resource: Option<String>,
}

/// Counts over the whole state, for `GET /metrics` ([`Store::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Resources by state name (`active`, ..., `purged`); absent states are 0.
    pub resources: BTreeMap<&'static str, u64>,
    /// Copies whose retries are exhausted (`stuck`).
    pub copies_stuck: u64,
    /// Backup copies in state `restricted`.
    pub copies_restricted: u64,
    /// Restricted backup copies kept past their store's `max_restricted`
    /// (an operator must act).
    pub copies_restriction_overdue: u64,
    /// Entries in the deadline index.
    pub pending_deadlines: u64,
    /// The earliest entry in the deadline index (possibly already past,
    /// while deletions are paused or stopped).
    pub next_deadline: Option<Timestamp>,
}

/// Changes applied together, atomically.
#[derive(Default, Debug)]
pub struct WriteSet {
    /// Resources to write, each with when it is next due (the deadline
    /// index follows).
    pub resources: Vec<(Resource, Option<Timestamp>)>,
    /// Tenant-wide holds to write.
    pub tenants: Vec<(String, TenantHolds)>,
    /// Event ids now handled.
    pub events: Vec<(String, EventOutcome)>,
    /// New audit records (into the outbox) and the head after them.
    pub audit: Vec<AuditRecord>,
    /// Audit records confirmed in the file: remove from the outbox up to here.
    pub outbox_done_through: Option<u64>,
    /// New manual clock reading.
    pub clock: Option<Timestamp>,
    /// Daemon-wide switches to set (`paused`, `clock_anomaly`, `guard_tripped`).
    pub flags: Vec<(&'static str, bool)>,
    /// Deletion certificates issued, by resource.
    pub certificates: Vec<(String, serde_json::Value)>,
    /// The mass-deletion guard's durable state, when it changed.
    pub guard: Option<crate::guard::GuardState>,
}

impl WriteSet {
    /// Adds a resource, replacing an earlier version of it in this set, so
    /// the deadline index is updated from the stored version exactly once.
    pub fn put_resource(&mut self, r: Resource, due: Option<Timestamp>) {
        self.resources.retain(|(old, _)| old.id != r.id);
        self.resources.push((r, due));
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.events.is_empty()
            && self.audit.is_empty()
            && self.tenants.is_empty()
            && self.outbox_done_through.is_none()
            && self.clock.is_none()
            && self.flags.is_empty()
            && self.certificates.is_empty()
            && self.guard.is_none()
    }
}

/// The daemon's durable state.
pub trait Store: Send + Sync + 'static {
    /// A resource by id.
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError>;
    /// The outcome of an event id already handled.
    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError>;
    /// Resources due at or before `now`, earliest first, at most `limit`.
    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError>;
    /// The earliest deadline strictly after `now`.
    fn next_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError>;
    /// The audit head as of the last committed write set.
    fn audit_head(&self) -> Result<AuditHead, StoreError>;
    /// Outbox records with seq > `after`, oldest first.
    fn outbox_after(&self, after: u64) -> Result<Vec<AuditRecord>, StoreError>;
    /// The persisted manual clock reading.
    fn clock(&self) -> Result<Option<Timestamp>, StoreError>;
    /// How many resources are tracked.
    fn resource_count(&self) -> Result<u64, StoreError>;
    /// Counts for metrics, from one pass over every resource record and
    /// one over the deadline index's keys: O(resources) per call, every
    /// record read and decoded, so a scrape costs a full scan.
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Calls `f` on every resource, in id order (forecast, sweeps).
    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError>;
    /// Calls `f` with every resource and its due time in the index (the
    /// reconcile sweep compares it with what the state says).
    fn for_each_resource_due(&self, f: &mut dyn FnMut(Resource, Option<Timestamp>)) -> Result<(), StoreError>;
    /// The ids of a tenant's resources.
    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Holds placed on a whole tenant.
    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError>;
    /// The deletion certificate of a purged resource.
    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// A daemon-wide switch (`paused`, `clock_anomaly`, `guard_tripped`);
    /// false when never set.
    fn flag(&self, name: &str) -> Result<bool, StoreError>;
    /// The mass-deletion guard's held batch and last approval (default
    /// when never written).
    fn guard_state(&self) -> Result<crate::guard::GuardState, StoreError>;
    /// Applies a write set atomically (visible at once, durable after flush).
    fn commit(&self, w: WriteSet) -> Result<(), StoreError>;
    /// Makes everything committed so far durable (fsync).
    fn flush(&self) -> Result<(), StoreError>;
}

/// The sled implementation.
pub struct SledStore {
    db: sled::Db,
}

const V: u32 = 1;

#[derive(Serialize, Deserialize)]
struct ResourceRecord {
    v: u32,
    due: Option<Timestamp>,
    resource: Resource,
}

fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

fn due_key(due: Timestamp, id: &str) -> Vec<u8> {
    // Flip the sign bit so negative millis sort before positive ones.
    let ms = (due.timestamp_millis() as u64) ^ (1 << 63);
    let mut k = b"d/".to_vec();
    k.extend_from_slice(&ms.to_be_bytes());
    k.push(b'/');
    k.extend_from_slice(id.as_bytes());
    k
}

fn parse_due_key(k: &[u8]) -> Option<(Timestamp, String)> {
    let ms = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?) ^ (1 << 63);
    let t = chrono::DateTime::from_timestamp_millis(ms as i64)?;
    let id = std::str::from_utf8(k.get(11..)?).ok()?;
    Some((t, id.to_string()))
}

fn outbox_key(seq: u64) -> Vec<u8> {
    let mut k = b"o/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Decode { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

impl SledStore {
    /// Opens (or creates) the database under `dir`. sled takes an exclusive
    /// lock: a second daemon on the same state dir fails here.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<SledStore, StoreError> {
        // sled would create it as the umask says; the database holds what
        // events said, so it is the daemon user's only (like the state dir).
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| StoreError::Db(format!("creating {}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(db_err)?;
        Ok(SledStore { db })
    }

    fn record(&self, id: &str) -> Result<Option<ResourceRecord>, StoreError> {
        let key = [b"r/", id.as_bytes()].concat();
        let rec: Option<ResourceRecord> = self.get(&key)?;
        match rec {
            Some(r) if r.v != V => Err(StoreError::Decode {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: format!("record version {} is not supported by this build", r.v),
            }),
            r => Ok(r),
        }
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => decode(key, &v).map(Some),
        }
    }
}

impl Store for SledStore {
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError> {
        Ok(self.record(id)?.map(|r| r.resource))
    }

    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError> {
        self.get(&[b"e/", event_id.as_bytes()].concat())
    }

    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(b"d/") {
            let (k, _) = kv.map_err(db_err)?;
            let Some((t, id)) = parse_due_key(&k) else {
                return Err(StoreError::Decode {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad deadline key".into(),
                });
            };
            if t > now || out.len() >= limit {
                break;
            }
            out.push((t, id));
        }
        Ok(out)
    }

    fn next_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let start = due_key(now + chrono::Duration::milliseconds(1), "");
        let mut start = start;
        start.pop(); // drop the '/' so every id at that millisecond is included
        for kv in self.db.range(start..) {
            let (k, _) = kv.map_err(db_err)?;
            if !k.starts_with(b"d/") {
                break;
            }
            if let Some((t, _)) = parse_due_key(&k) {
                if t > now {
                    return Ok(Some(t));
                }
            }
        }
        Ok(None)
    }

    fn audit_head(&self) -> Result<AuditHead, StoreError> {
        Ok(self.get(b"m/audit_head")?.unwrap_or_else(AuditHead::genesis))
    }

    fn outbox_after(&self, after: u64) -> Result<Vec<AuditRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.range(outbox_key(after.saturating_add(1))..outbox_key(u64::MAX)) {
            let (k, v) = kv.map_err(db_err)?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn clock(&self) -> Result<Option<Timestamp>, StoreError> {
        self.get(b"m/clock")
    }

    fn resource_count(&self) -> Result<u64, StoreError> {
        Ok(self.db.scan_prefix(b"r/").keys().count() as u64)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut st = StoreStats::default();
        self.for_each_resource(&mut |r| {
            *st.resources.entry(r.state.as_str()).or_default() += 1;
            for c in &r.copies {
                st.copies_stuck += u64::from(c.stuck);
                st.copies_restricted += u64::from(c.state == crate::lifecycle::CopyState::Restricted);
                st.copies_restriction_overdue += u64::from(
                    c.restriction_overdue
                        && matches!(
                            c.state,
                            crate::lifecycle::CopyState::Restricted | crate::lifecycle::CopyState::Restricting
                        ),
                );
            }
        })?;
        for k in self.db.scan_prefix(b"d/").keys() {
            let k = k.map_err(db_err)?;
            if st.next_deadline.is_none() {
                // The index is ordered by due time: the first key is the earliest.
                st.next_deadline = parse_due_key(&k).map(|(t, _)| t);
            }
            st.pending_deadlines += 1;
        }
        Ok(st)
    }

    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError> {
        for kv in self.db.scan_prefix(b"r/") {
            let (k, v) = kv.map_err(db_err)?;
            let rec: ResourceRecord = decode(&k, &v)?;
            f(rec.resource);
        }
        Ok(())
    }

    fn for_each_resource_due(&self, f: &mut dyn FnMut(Resource, Option<Timestamp>)) -> Result<(), StoreError> {
        for kv in self.db.scan_prefix(b"r/") {
            let (k, v) = kv.map_err(db_err)?;
            let rec: ResourceRecord = decode(&k, &v)?;
            f(rec.resource, rec.due);
        }
        Ok(())
    }

    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let prefix = [b"t/", tenant.as_bytes(), b"/"].concat();
        let mut out = Vec::new();
        for k in self.db.scan_prefix(&prefix).keys() {
            let k = k.map_err(db_err)?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError> {
        Ok(self.get(&[b"n/", tenant.as_bytes()].concat())?.unwrap_or_default())
    }

    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(&[b"c/", resource.as_bytes()].concat())
    }

    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.get(&[b"f/", name.as_bytes()].concat())?.unwrap_or(false))
    }

    fn guard_state(&self) -> Result<crate::guard::GuardState, StoreError> {
        Ok(self.get(b"m/guard")?.unwrap_or_default())
    }

    fn commit(&self, w: WriteSet) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (r, due) in &w.resources {
            // Keep the index equal to the records' due times: drop the old
            // entry, add the new.
            match self.record(&r.id)? {
                Some(old) => {
                    if let Some(t) = old.due {
                        batch.remove(due_key(t, &r.id));
                    }
                }
                None => batch.insert([b"t/", r.tenant.as_bytes(), b"/", r.id.as_bytes()].concat(), &[] as &[u8]),
            }
            if let Some(t) = due {
                batch.insert(due_key(*t, &r.id), &[] as &[u8]);
            }
            let rec = ResourceRecord { v: V, due: *due, resource: r.clone() };
            batch.insert([b"r/", r.id.as_bytes()].concat(), encode(&rec));
        }
        for (tenant, holds) in &w.tenants {
            batch.insert([b"n/", tenant.as_bytes()].concat(), encode(holds));
        }
        for (id, cert) in &w.certificates {
            batch.insert([b"c/", id.as_bytes()].concat(), encode(cert));
        }
        for (name, on) in &w.flags {
            batch.insert([b"f/", name.as_bytes()].concat(), encode(on));
        }
        for (id, outcome) in &w.events {
            batch.insert([b"e/", id.as_bytes()].concat(), encode(outcome));
        }
        if let Some(last) = w.audit.last() {
            for rec in &w.audit {
                batch.insert(outbox_key(rec.seq), encode(rec));
            }
            batch.insert(&b"m/audit_head"[..], encode(&AuditHead { seq: last.seq, hash: last.hash.clone() }));
        }
        if let Some(done) = w.outbox_done_through {
            for kv in self.db.range(outbox_key(0)..=outbox_key(done)) {
                let (k, _) = kv.map_err(db_err)?;
                batch.remove(k);
            }
        }
        if let Some(t) = w.clock {
            batch.insert(&b"m/clock"[..], encode(&t));
        }
        if let Some(g) = &w.guard {
            batch.insert(&b"m/guard"[..], encode(g));
        }
        self.db.apply_batch(batch).map_err(db_err)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(db_err)
    }
}
