//! How state is laid out under ordered byte keys and how each record is
//! encoded: the on-disk format of the sled engine, kept here, apart from
//! sled itself, so that any other key-value engine writes the same bytes
//! and an existing database reads the same. The deadline index's order
//! ([`DueKey`]) is shared by every engine, the in-memory one included.
//!
//! One keyspace, keys by prefix (ids never contain `/`, see [`crate::ids`]):
//! - `r/<resource>`: the resource and its due time, versioned
//!   ([`ResourceRecord`]: compact, version 2, or 3 where a hold has a
//!   review date, see [`super::compact`]; older builds wrote JSON
//!   `{"v":1,"due":..,"resource":..}`, still read)
//! - `d/<due millis, 8 bytes big-endian, sign-flipped>/<resource>`: the
//!   deadline index, ordered by due time then resource id, kept equal to
//!   each record's `due` by the engine's commit (it removes the old key it
//!   reads)
//! - `t/<tenant>/<resource>`: the resources of a tenant
//! - `n/<tenant>`: holds placed on a whole tenant
//! - `c/<resource>`: the deletion certificate of a purged resource
//! - `e/<event_id>`: ids of events already handled, with their outcome
//!   (compact, version 2; JSON in older builds, still read)
//! - `o/<seq, 8 bytes big-endian>`: audit records not yet confirmed in the
//!   audit file (the outbox): a chunk of a commit's consecutive records
//!   keyed by its last seq ([`outbox_chunks`]; one record alone is compact
//!   version 2, as is each record of older builds; JSON in older still)
//! - `m/audit_head`, `m/clock`: the audit chain head, the manual clock reading
//! - `m/guard`: the mass-deletion guard's held batch and last approval
//! - `m/stats`: the gauges of [`super::StoreStats`] as counters, written by
//!   every commit that writes a resource ([`StatsRecord`])
//! - `f/<name>`: daemon-wide switches that stop deletions
//!   ([`super::Flag::as_str`]), kept across restarts
//!
//! The records written once per resource and once per event (`r/`, `e/`,
//! `o/`) are compact and versioned by their leading byte (JSON ones, of
//! older builds, begin with `{`). The other values are JSON: few keys,
//! small serde types whose changes so far were additive.

use super::{compact, Flag};
use crate::domain::lifecycle::Resource;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Why a stored record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not the JSON this build expects (corrupt, or written
    /// by an incompatible build).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The bytes are not a compact (v2) record: cut short or corrupt.
    #[error("not a version 2 record: {0}")]
    Binary(#[from] postcard::Error),
    /// A compact record whose field holds a value no build writes (an
    /// unknown code, a time out of range, bytes left over).
    #[error("version 2 record with a bad {0}")]
    Field(&'static str),
    /// A record of a version this build does not know (written by a newer
    /// build): for the compact records, their leading byte.
    #[error("record version {0} is not supported by this build")]
    Version(u32),
    /// A deadline index key that does not decode to a time and an id.
    #[error("bad deadline key")]
    DueKey,
}

/// A resource record as read: the resource and its due time (what the
/// deadline index must hold for it). Written as [`super::compact`] says.
pub(crate) struct ResourceRecord {
    /// When the resource is next due, as in the deadline index.
    pub due: Option<Timestamp>,
    /// The resource itself.
    pub resource: Resource,
}

/// The version 1 form, JSON, written by builds before the compact one:
/// still read, never written.
#[derive(Serialize, Deserialize)]
pub(crate) struct ResourceRecordV1 {
    /// 1.
    pub v: u32,
    /// See [`ResourceRecord::due`].
    pub due: Option<Timestamp>,
    /// See [`ResourceRecord::resource`].
    pub resource: Resource,
}

impl ResourceRecord {
    /// Decodes the stored record of resource `id` (its key's id: the
    /// compact form does not repeat it), of version 1, 2 or 3, refusing
    /// any other.
    pub fn decode(id: &str, bytes: &[u8]) -> Result<ResourceRecord, RecordError> {
        match bytes.first() {
            Some(b'{') => {
                let rec: ResourceRecordV1 = serde_json::from_slice(bytes)?;
                if rec.v != 1 {
                    return Err(RecordError::Version(rec.v));
                }
                Ok(ResourceRecord { due: rec.due, resource: rec.resource })
            }
            Some(&compact::V2) => {
                let (resource, due) = compact::decode_resource(id, &bytes[1..])?;
                Ok(ResourceRecord { due, resource })
            }
            Some(&compact::V3) => {
                let (resource, due) = compact::decode_resource_v3(id, &bytes[1..])?;
                Ok(ResourceRecord { due, resource })
            }
            Some(other) => Err(RecordError::Version(u32::from(*other))),
            None => Err(RecordError::Field("empty record")),
        }
    }

    /// The bytes this build writes: version 2, or 3 for a resource with a
    /// hold that has a review date ([`compact::V3`]).
    pub fn encode(resource: &Resource, due: Option<Timestamp>) -> Vec<u8> {
        compact::encode_resource(resource, due)
    }
}

/// Decodes an event outcome (`e/<event_id>`): JSON as version 1 wrote it,
/// or version 2; any other version is refused.
pub(crate) fn decode_outcome(bytes: &[u8]) -> Result<super::EventOutcome, RecordError> {
    match bytes.first() {
        Some(b'{') => Ok(serde_json::from_slice(bytes)?),
        Some(&compact::V2) => compact::decode_outcome(&bytes[1..]),
        Some(other) => Err(RecordError::Version(u32::from(*other))),
        None => Err(RecordError::Field("empty record")),
    }
}

/// Decodes an outbox key's value (`o/<seq>`): a chunk of records
/// ([`compact::CHUNK`]), or one record, as JSON (version 1) or version 2;
/// any other version is refused.
pub(crate) fn decode_audit(bytes: &[u8]) -> Result<Vec<crate::audit::AuditRecord>, RecordError> {
    match bytes.first() {
        Some(b'{') => Ok(vec![serde_json::from_slice(bytes)?]),
        Some(&compact::V2) => Ok(vec![compact::decode_audit(&bytes[1..])?]),
        Some(&compact::CHUNK) => compact::decode_audit_chunk(&bytes[1..]),
        Some(other) => Err(RecordError::Version(u32::from(*other))),
        None => Err(RecordError::Field("empty record")),
    }
}

/// The most bytes of audit records put under one outbox key: a commit's
/// records are split into chunks of about this size, each keyed by its
/// last seq. sled 0.34 splits a leaf by its count of keys (past 16), not
/// its size, and writes a leaf over a quarter of its 512 KiB segment as a
/// blob file of its own: 16 chunks of 4 KiB keep a leaf of outbox keys
/// well under that, while a group of 1,000 events still takes about 50
/// keys instead of 1,000.
const CHUNK_BYTES: usize = 4 * 1024;

/// The outbox keys and values for a commit's audit records (in seq order):
/// chunks of consecutive records, each keyed by its last seq, so that
/// `outbox_key(after + 1)..` starts at the first chunk holding a record
/// past `after`.
pub(crate) fn outbox_chunks(records: &[crate::audit::AuditRecord]) -> Vec<(Vec<u8>, Vec<u8>)> {
    compact::encode_audit_chunks(records, CHUNK_BYTES).into_iter().map(|(seq, v)| (outbox_key(seq), v)).collect()
}

/// The bytes of an event outcome this build writes: version 2.
pub(crate) fn encode_outcome(o: &super::EventOutcome) -> Vec<u8> {
    compact::encode_outcome(o)
}

/// The stored counters of [`super::StoreStats`] (all but the earliest
/// deadline, which the index's first key gives), so `GET /metrics` reads
/// one key instead of decoding every resource (issue 11: 15 s at a million
/// resources). Written in the same batch as the records they count.
#[derive(Serialize, Deserialize)]
pub(crate) struct StatsRecord {
    /// [`STATS_RECORD_VERSION`].
    pub v: u32,
    /// Resources by state name.
    pub resources: std::collections::BTreeMap<String, u64>,
    /// See [`super::StoreStats`].
    pub copies_stuck: u64,
    /// See [`super::StoreStats`].
    pub copies_restricted: u64,
    /// See [`super::StoreStats`].
    pub copies_restriction_overdue: u64,
    /// Entries in the deadline index.
    pub pending_deadlines: u64,
}

/// The counters' record version; another is recounted, not trusted.
pub(crate) const STATS_RECORD_VERSION: u32 = 1;

/// Where the counters are kept.
pub(crate) const STATS_KEY: &[u8] = b"m/stats";

impl StatsRecord {
    /// The stored form of `st`.
    pub fn of(st: &super::StoreStats) -> StatsRecord {
        StatsRecord {
            v: STATS_RECORD_VERSION,
            resources: st.resources.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            copies_stuck: st.copies_stuck,
            copies_restricted: st.copies_restricted,
            copies_restriction_overdue: st.copies_restriction_overdue,
            pending_deadlines: st.pending_deadlines,
        }
    }

    /// The counters, or None when they cannot be trusted (another version,
    /// a state this build does not know): the caller recounts.
    pub fn counts(self) -> Option<super::StoreStats> {
        if self.v != STATS_RECORD_VERSION {
            return None;
        }
        let mut resources = std::collections::BTreeMap::new();
        for (name, n) in self.resources {
            let state: crate::domain::lifecycle::State =
                serde_json::from_value(serde_json::Value::String(name)).ok()?;
            resources.insert(state.as_str(), n);
        }
        Some(super::StoreStats {
            resources,
            copies_stuck: self.copies_stuck,
            copies_restricted: self.copies_restricted,
            copies_restriction_overdue: self.copies_restriction_overdue,
            pending_deadlines: self.pending_deadlines,
            next_deadline: None,
        })
    }
}

/// Prefix of the resource records.
pub(crate) const RESOURCE_PREFIX: &[u8] = b"r/";
/// Prefix of the deadline index.
pub(crate) const DUE_PREFIX: &[u8] = b"d/";
/// The audit chain head after the last committed write set.
pub(crate) const AUDIT_HEAD_KEY: &[u8] = b"m/audit_head";
/// The persisted manual clock reading.
pub(crate) const CLOCK_KEY: &[u8] = b"m/clock";
/// The mass-deletion guard's state.
pub(crate) const GUARD_KEY: &[u8] = b"m/guard";

/// `r/<resource>`.
pub(crate) fn resource_key(id: &str) -> Vec<u8> {
    [RESOURCE_PREFIX, id.as_bytes()].concat()
}

/// `t/<tenant>/`: every key of the tenant's resources starts with it.
pub(crate) fn tenant_prefix(tenant: &str) -> Vec<u8> {
    [b"t/", tenant.as_bytes(), b"/"].concat()
}

/// `t/<tenant>/<resource>`.
pub(crate) fn tenant_resource_key(tenant: &str, id: &str) -> Vec<u8> {
    [tenant_prefix(tenant).as_slice(), id.as_bytes()].concat()
}

/// Prefix of the tenants' holds.
pub(crate) const TENANT_HOLDS_PREFIX: &[u8] = b"n/";

/// `n/<tenant>`.
pub(crate) fn tenant_holds_key(tenant: &str) -> Vec<u8> {
    [TENANT_HOLDS_PREFIX, tenant.as_bytes()].concat()
}

/// `c/<resource>`.
pub(crate) fn certificate_key(id: &str) -> Vec<u8> {
    [b"c/", id.as_bytes()].concat()
}

/// `e/<event_id>`.
pub(crate) fn event_key(id: &str) -> Vec<u8> {
    [b"e/", id.as_bytes()].concat()
}

/// `f/<flag name>`: the bytes every build has used for these switches.
pub(crate) fn flag_key(flag: Flag) -> Vec<u8> {
    [b"f/", flag.as_str().as_bytes()].concat()
}

/// `o/<seq>`: big-endian, so the outbox is in seq order.
pub(crate) fn outbox_key(seq: u64) -> Vec<u8> {
    let mut k = b"o/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// An entry of the deadline index: a due time, to the millisecond, and the
/// resource due then. Ordered by time, then by resource id (byte order),
/// which is the order of the encoded keys: the engine that stores bytes and
/// the one that stores these values list deadlines the same way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DueKey {
    /// Milliseconds since 1970 (negative before), rounded down.
    pub millis: i64,
    /// The resource due.
    pub resource: String,
}

impl DueKey {
    /// The index entry for `id` due at `due` (held to the millisecond, as
    /// the stored key is).
    pub fn new(due: Timestamp, id: &str) -> DueKey {
        DueKey { millis: due.timestamp_millis(), resource: id.to_owned() }
    }

    /// The due time, or `None` for millis outside the representable range
    /// (only a corrupt key has them).
    pub fn at(&self) -> Option<Timestamp> {
        chrono::DateTime::from_timestamp_millis(self.millis)
    }

    /// `d/<millis>/<resource>`.
    pub fn encode(&self) -> Vec<u8> {
        let mut k = due_prefix_from(self.millis);
        k.push(b'/');
        k.extend_from_slice(self.resource.as_bytes());
        k
    }

    /// The entry a `d/` key encodes, `None` when it is malformed.
    pub fn decode(k: &[u8]) -> Option<DueKey> {
        let ms = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?) ^ (1 << 63);
        let id = std::str::from_utf8(k.get(11..)?).ok()?;
        Some(DueKey { millis: ms as i64, resource: id.to_owned() })
    }
}

/// `d/<millis>`: sorts before every index key at `millis` or later, and
/// after every key before it.
pub(crate) fn due_prefix_from(millis: i64) -> Vec<u8> {
    // Flip the sign bit so negative millis sort before positive ones.
    let ms = (millis as u64) ^ (1 << 63);
    let mut k = DUE_PREFIX.to_vec();
    k.extend_from_slice(&ms.to_be_bytes());
    k
}

/// Decodes a JSON value stored under `key`.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, RecordError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Encodes a value for storage.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key bytes of existing databases, spelled out: a change here is
    /// a change of format.
    #[test]
    fn keys_keep_their_bytes() {
        assert_eq!(resource_key("r1"), b"r/r1");
        assert_eq!(tenant_resource_key("t1", "r1"), b"t/t1/r1");
        assert_eq!(tenant_holds_key("t1"), b"n/t1");
        assert_eq!(certificate_key("r1"), b"c/r1");
        assert_eq!(event_key("e1"), b"e/e1");
        assert_eq!(flag_key(Flag::Paused), b"f/paused");
        assert_eq!(flag_key(Flag::ClockAnomaly), b"f/clock_anomaly");
        assert_eq!(flag_key(Flag::GuardTripped), b"f/guard_tripped");
        assert_eq!(outbox_key(258), b"o/\0\0\0\0\0\0\x01\x02");
        let t = chrono::DateTime::from_timestamp_millis(1).unwrap();
        assert_eq!(DueKey::new(t, "r1").encode(), b"d/\x80\0\0\0\0\0\0\x01/r1");
        let t = chrono::DateTime::from_timestamp_millis(-1).unwrap();
        assert_eq!(DueKey::new(t, "r1").encode(), b"d/\x7f\xff\xff\xff\xff\xff\xff\xff/r1");
    }

    /// Encoded keys sort as the entries do, across 1970.
    #[test]
    fn due_keys_sort_by_time_then_id() {
        let at = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let mut entries =
            vec![DueKey::new(at(5), "b"), DueKey::new(at(-5), "a"), DueKey::new(at(5), "a"), DueKey::new(at(0), "z")];
        let mut keys: Vec<Vec<u8>> = entries.iter().map(DueKey::encode).collect();
        entries.sort();
        keys.sort();
        let decoded: Vec<DueKey> = keys.iter().map(|k| DueKey::decode(k).unwrap()).collect();
        assert_eq!(decoded, entries);
        assert_eq!(entries[0], DueKey::new(at(-5), "a"));
        assert_eq!(entries[3], DueKey::new(at(5), "b"));
    }
}
