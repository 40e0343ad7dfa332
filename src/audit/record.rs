//! One audit record and the head of the chain.

use super::*;

/// One line of the audit log.
///
/// The field set is closed (`deny_unknown_fields`) because the hash covers
/// exactly these fields: a reader that silently dropped an unknown key would
/// compute a different hash than the writer and the chain would look broken
/// (or, worse, an attacker could smuggle unhashed content in).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log, 1 for the first record, +1 for each next one,
    /// across segments; gaps and repeats are how deletions and insertions
    /// show up.
    pub seq: u64,
    /// When the step happened, RFC 3339 UTC as produced by
    /// [`crate::time::fmt_rfc3339`].
    pub at: String,
    /// What happened (e.g. a deletion step); the vocabulary belongs to the
    /// callers, the log only hashes it.
    pub kind: String,
    /// The tenant concerned, or `None` (JSON `null`) for daemon-wide records.
    pub tenant: Option<String>,
    /// The resource concerned, or `None` (JSON `null`) for records about no
    /// single resource.
    pub resource: Option<String>,
    /// Step-specific details (ids, counts, hashes — never business data).
    /// Integers, strings, booleans, null, arrays and objects only: floats are
    /// not covered by the canonical form used here, see [`canonical_json`].
    pub data: Value,
    /// `hash` of the previous record, [`GENESIS_HASH`] for seq 1.
    pub prev: String,
    /// Lowercase hex SHA-256 of the canonical JSON of this record without
    /// the `hash` key.
    pub hash: String,
}

impl AuditRecord {
    /// Builds a record chained onto `prev` and computes its hash, so callers
    /// can never produce a record whose hash disagrees with its contents.
    /// `at` is formatted with [`crate::time::fmt_rfc3339`] so that every
    /// record spells time the same way (the hash depends on the spelling).
    pub fn seal(
        seq: u64,
        at: Timestamp,
        kind: &str,
        tenant: Option<&str>,
        resource: Option<&str>,
        data: Value,
        prev: &str,
    ) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            at: fmt_rfc3339(at),
            kind: kind.to_owned(),
            tenant: tenant.map(str::to_owned),
            resource: resource.map(str::to_owned),
            data,
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    /// The hash this record must carry: lowercase hex SHA-256 over the
    /// canonical JSON of every field except `hash`. Canonical JSON makes the
    /// hash independent of how any particular serializer orders keys or
    /// spaces tokens, so a verifier written in another language agrees.
    pub fn compute_hash(&self) -> String {
        let mut canonical = String::with_capacity(256);
        self.write_canonical(&mut canonical, false);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The exact line written to the log: canonical JSON of the whole record
    /// plus `'\n'`. Canonical JSON escapes every control character inside
    /// strings, so the only raw newline is the terminator.
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(320);
        self.write_canonical(&mut line, true);
        line.push('\n');
        line
    }

    /// Writes `canonical_json(&self.to_value(with_hash))` straight from the
    /// fields, without copying `data` into a new object first (issue 11:
    /// building and freeing that copy for every record was a large part of
    /// a deletion's cost). The record's own keys, sorted as RFC 8785 sorts
    /// them (all ASCII): at, data, hash, kind, prev, resource, seq, tenant.
    fn write_canonical(&self, out: &mut String, with_hash: bool) {
        let opt = |out: &mut String, s: &Option<String>| match s {
            Some(s) => write_canonical_str(out, s),
            None => out.push_str("null"),
        };
        out.push_str("{\"at\":");
        write_canonical_str(out, &self.at);
        out.push_str(",\"data\":");
        super::canonical::write_canonical(out, &self.data);
        if with_hash {
            out.push_str(",\"hash\":");
            write_canonical_str(out, &self.hash);
        }
        out.push_str(",\"kind\":");
        write_canonical_str(out, &self.kind);
        out.push_str(",\"prev\":");
        write_canonical_str(out, &self.prev);
        out.push_str(",\"resource\":");
        opt(out, &self.resource);
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"tenant\":");
        opt(out, &self.tenant);
        out.push('}');
    }

    /// The record as a JSON object, optionally without `hash`. Built by hand
    /// rather than through `serde_json::to_value` so there is no failure path.
    pub(super) fn to_value(&self, with_hash: bool) -> Value {
        let opt = |s: &Option<String>| s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
        let mut map = Map::new();
        map.insert("seq".into(), Value::from(self.seq));
        map.insert("at".into(), Value::String(self.at.clone()));
        map.insert("kind".into(), Value::String(self.kind.clone()));
        map.insert("tenant".into(), opt(&self.tenant));
        map.insert("resource".into(), opt(&self.resource));
        map.insert("data".into(), self.data.clone());
        map.insert("prev".into(), Value::String(self.prev.clone()));
        if with_hash {
            map.insert("hash".into(), Value::String(self.hash.clone()));
        }
        Value::Object(map)
    }
}

/// Sequence number and hash of the last record of the log: everything a
/// writer needs to chain the next record, and everything a verifier needs to
/// notice that trailing records were removed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditHead {
    /// `seq` of the last record, 0 for an empty log.
    pub seq: u64,
    /// `hash` of the last record, [`GENESIS_HASH`] for an empty log.
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty log, onto which record 1 chains.
    pub fn genesis() -> Self {
        AuditHead { seq: 0, hash: GENESIS_HASH.to_owned() }
    }

    pub(super) fn of(record: &AuditRecord) -> Self {
        AuditHead { seq: record.seq, hash: record.hash.clone() }
    }
}
