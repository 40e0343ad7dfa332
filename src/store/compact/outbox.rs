//! The compact (version 2) form of the outbox's audit records
//! (`o/<seq>`): each is written with the change it records and removed
//! once the audit file holds it, so its bytes are written to sled's log
//! and left there as garbage (issue 11: the outbox's churn cost about as
//! much disk as the records of the resources themselves). Every field
//! reads back as the very text it was: the record's hash covers it.

use super::{text, time_prefix, ts, versioned, whole, Text, Ts};
use crate::audit::AuditRecord;
use crate::store::record::RecordError;
use serde::{Deserialize, Serialize};

/// A SHA-256 hash: 32 bytes when it is lowercase hex of them (as every
/// build writes it), its text otherwise.
#[derive(Serialize, Deserialize)]
enum Hash {
    Raw([u8; 32]),
    Own(String),
}

fn hash(s: &str) -> Hash {
    let raw: Option<[u8; 32]> = hex::decode(s).ok().and_then(|b| b.try_into().ok());
    match raw {
        Some(b) if hex::encode(b) == s => Hash::Raw(b),
        _ => Hash::Own(s.to_owned()),
    }
}

impl Hash {
    fn get(self) -> String {
        match self {
            Hash::Raw(b) => hex::encode(b),
            Hash::Own(s) => s,
        }
    }
}

/// The record's time: as a time when it is spelled the way
/// [`crate::time::fmt_rfc3339`] spells it, its text otherwise.
#[derive(Serialize, Deserialize)]
enum At {
    Time(Ts),
    Own(String),
}

#[derive(Serialize, Deserialize)]
struct AuditV2 {
    seq: u64,
    at: At,
    kind: Text,
    tenant: Option<String>,
    resource: Option<String>,
    /// The details as JSON text.
    data: String,
    prev: Hash,
    hash: Hash,
}

/// The v2 bytes of an outbox record.
pub(crate) fn encode_audit(r: &AuditRecord) -> Vec<u8> {
    let AuditRecord { seq, at, kind, tenant, resource, data, prev, hash: h } = r;
    let at = match time_prefix(at) {
        Some((t, n)) if n == at.len() => At::Time(ts(t)),
        _ => At::Own(at.clone()),
    };
    versioned(&AuditV2 {
        seq: *seq,
        at,
        kind: text(kind),
        tenant: tenant.clone(),
        resource: resource.clone(),
        data: serde_json::to_string(data).expect("JSON values serialize"),
        prev: hash(prev),
        hash: hash(h),
    })
}

/// Decodes the v2 bytes (after the version byte) of an outbox record.
pub(crate) fn decode_audit(body: &[u8]) -> Result<AuditRecord, RecordError> {
    let r: AuditV2 = whole(body)?;
    Ok(AuditRecord {
        seq: r.seq,
        at: match r.at {
            At::Time(t) => crate::time::fmt_rfc3339(t.get()?),
            At::Own(s) => s,
        },
        kind: r.kind.get()?,
        tenant: r.tenant,
        resource: r.resource,
        data: serde_json::from_str(&r.data)?,
        prev: r.prev.get(),
        hash: r.hash.get(),
    })
}
