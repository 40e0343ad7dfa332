//! The compact (version 2) form of the outbox's audit records
//! (`o/<seq>`): they are written with the change they record and removed
//! once the audit file holds them, so their bytes are written to sled's
//! log and left there as garbage (issue 11: the outbox's churn cost about
//! as much disk as the records of the resources themselves). A commit's
//! records go in chunks, several under one key ([`CHUNK`]); one record
//! alone, and each record of older builds, is a plain v2 value. Every
//! field reads back as the very text it was: the record's hash covers it.

use super::{text, time_prefix, ts, whole, Text, Ts, V2};
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

/// The leading byte of an outbox chunk: several audit records of one
/// commit under one key (issue 11: one key per record cost a sled insert
/// and a later removal per event, a third of a batched ingest's writes).
/// A chunk of one record is written as a plain v2 record instead, the
/// bytes older builds read.
pub(crate) const CHUNK: u8 = 4;

fn mirror(r: &AuditRecord) -> AuditV2 {
    let AuditRecord { seq, at, kind, tenant, resource, data, prev, hash: h } = r;
    let at = match time_prefix(at) {
        Some((t, n)) if n == at.len() => At::Time(ts(t)),
        _ => At::Own(at.clone()),
    };
    AuditV2 {
        seq: *seq,
        at,
        kind: text(kind),
        tenant: tenant.clone(),
        resource: resource.clone(),
        data: serde_json::to_string(data).expect("JSON values serialize"),
        prev: hash(prev),
        hash: hash(h),
    }
}

/// The v2 bytes of one outbox record, as builds before chunks wrote each
/// (and as a chunk of one is still written).
#[cfg(test)]
pub(crate) fn encode_audit(r: &AuditRecord) -> Vec<u8> {
    super::versioned(&mirror(r))
}

/// A commit's audit records (in seq order) as outbox chunks of about
/// `max_bytes` each: (the chunk's last seq, its bytes). A chunk of several
/// records is [`CHUNK`] then postcard of the list (its length, then each
/// record, each encoded once here); a chunk of one is a plain v2 record.
pub(crate) fn encode_audit_chunks(records: &[AuditRecord], max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut chunk: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    for (i, r) in records.iter().enumerate() {
        let one = postcard::to_allocvec(&mirror(r)).expect("records serialize");
        size += one.len();
        chunk.push(one);
        if size >= max_bytes || i + 1 == records.len() {
            let bytes = if let [one] = &chunk[..] {
                [&[V2][..], one].concat()
            } else {
                let head = postcard::to_extend(&chunk.len(), vec![CHUNK]).expect("lengths serialize");
                chunk.iter().fold(head, |mut b, one| {
                    b.extend_from_slice(one);
                    b
                })
            };
            out.push((r.seq, bytes));
            chunk.clear();
            size = 0;
        }
    }
    out
}

/// Decodes the bytes (after the [`CHUNK`] byte) of an outbox chunk.
pub(crate) fn decode_audit_chunk(body: &[u8]) -> Result<Vec<AuditRecord>, RecordError> {
    let list: Vec<AuditV2> = whole(body)?;
    list.into_iter().map(unmirror).collect()
}

/// Decodes the v2 bytes (after the version byte) of an outbox record.
pub(crate) fn decode_audit(body: &[u8]) -> Result<AuditRecord, RecordError> {
    unmirror(whole(body)?)
}

fn unmirror(r: AuditV2) -> Result<AuditRecord, RecordError> {
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
