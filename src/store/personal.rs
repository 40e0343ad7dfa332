//! What the store keeps of personal data (issue 12, product-spec §8), shared
//! by every engine: a subject's key, and what each subject record adds
//! beside it (its entry in the subjects' deadline index, its requests in
//! the request index, its open requests), so every engine derives the same
//! indexes from the same record.

use super::RecordError;
use crate::domain::privacy::{RequestKind, RequestState, Subject};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A subject: its tenant and its id within it. Ordered by tenant, then id
/// (ids never contain `/`: [`crate::ids`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectKey {
    /// The tenant.
    pub tenant: String,
    /// The subject within it.
    pub subject: String,
}

impl SubjectKey {
    /// The key of `s`.
    pub fn of(s: &Subject) -> SubjectKey {
        SubjectKey { tenant: s.tenant.clone(), subject: s.id.clone() }
    }

    /// `tenant/subject`, for messages and logs.
    pub fn display(&self) -> String {
        format!("{}/{}", self.tenant, self.subject)
    }
}

/// An open request (not completed, partially completed or refused): what
/// metrics and the list of open requests read without opening subjects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The request's id.
    pub id: String,
    /// Whose.
    pub key: SubjectKey,
    /// Erasure or restriction.
    pub kind: RequestKind,
    /// Where it stands.
    pub state: RequestState,
    /// When it must be answered by.
    pub due: Timestamp,
    /// Whether `due` passed without an answer.
    pub overdue: bool,
}

/// The open requests of a subject record, by id order.
pub(crate) fn open_requests(s: &Subject) -> Vec<OpenRequest> {
    let mut open: Vec<OpenRequest> = s
        .requests
        .iter()
        .filter(|r| !r.state.is_closed())
        .map(|r| OpenRequest {
            id: r.id.clone(),
            key: SubjectKey::of(s),
            kind: r.kind,
            state: r.state,
            due: r.due,
            overdue: r.overdue,
        })
        .collect();
    open.sort_by(|a, b| a.id.cmp(&b.id));
    open
}

/// The keys of a subject's erasure starts in the deletion starts the
/// mass-deletion guard counts (`indexes::start_key`, shared with the
/// resources'), under the guard's name for the subject: a restart counts
/// them again.
pub(crate) fn start_keys(s: &Subject) -> Vec<Vec<u8>> {
    let id = crate::domain::guard::subject_candidate(&s.tenant, &s.id);
    s.guard_starts().into_iter().map(|t| super::indexes::start_key(t, &id)).collect()
}

/// The stored form of a subject (`p/<tenant>/<subject>`): JSON, version 1,
/// with its due time (what the subjects' deadline index must hold for it).
/// Few records (one a person), read one at a time: JSON keeps them
/// readable and their changes additive.
#[derive(Serialize, Deserialize)]
pub(crate) struct SubjectRecord {
    /// 1.
    pub v: u32,
    /// See [`crate::store::WriteSet::subjects`].
    pub due: Option<Timestamp>,
    /// The subject.
    pub subject: Subject,
}

impl SubjectRecord {
    /// Decodes a stored subject, refusing a version this build does not know.
    pub fn decode(bytes: &[u8]) -> Result<SubjectRecord, RecordError> {
        let rec: SubjectRecord = serde_json::from_slice(bytes)?;
        if rec.v != 1 {
            return Err(RecordError::Version(rec.v));
        }
        Ok(rec)
    }
}

/// Keys of the personal data in an ordered key-value engine (the sled
/// engine's layout; `record.rs` lists the others):
/// - `p/<tenant>/<subject>`: a subject ([`SubjectRecord`])
/// - `j/<due millis, 8 bytes big-endian, sign-flipped>/<tenant>/<subject>`:
///   the subjects' deadline index
/// - `q/<request>`: the request index, valued `<tenant>/<subject>`
/// - `w/<request>`: the open requests, valued [`OpenRequest`] as JSON
pub(crate) mod keys {
    use super::SubjectKey;
    use crate::time::Timestamp;

    /// Prefix of subject records.
    pub const SUBJECT_PREFIX: &[u8] = b"p/";
    /// Prefix of the subjects' deadline index.
    pub const DUE_PREFIX: &[u8] = b"j/";
    /// Prefix of the request index.
    pub const REQUEST_PREFIX: &[u8] = b"q/";
    /// Prefix of the open requests.
    pub const OPEN_PREFIX: &[u8] = b"w/";

    /// `p/<tenant>/<subject>`.
    pub fn subject(k: &SubjectKey) -> Vec<u8> {
        [SUBJECT_PREFIX, k.tenant.as_bytes(), b"/", k.subject.as_bytes()].concat()
    }

    /// `p/<tenant>/`: every subject of a tenant.
    pub fn tenant_subjects(tenant: &str) -> Vec<u8> {
        [SUBJECT_PREFIX, tenant.as_bytes(), b"/"].concat()
    }

    /// `j/<millis>`: sorts before every entry at `millis` or later.
    pub fn due_from(millis: i64) -> Vec<u8> {
        let ms = (millis as u64) ^ (1 << 63);
        [DUE_PREFIX, &ms.to_be_bytes()].concat()
    }

    /// `j/<millis>/<tenant>/<subject>`, held to the millisecond (rounded
    /// down).
    pub fn due(t: Timestamp, k: &SubjectKey) -> Vec<u8> {
        [due_from(t.timestamp_millis()).as_slice(), b"/", k.tenant.as_bytes(), b"/", k.subject.as_bytes()].concat()
    }

    /// The entry a `j/` key encodes; `None` when malformed.
    pub fn decode_due(k: &[u8]) -> Option<(Timestamp, SubjectKey)> {
        let ms = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?) ^ (1 << 63);
        let at = chrono::DateTime::from_timestamp_millis(ms as i64)?;
        let rest = std::str::from_utf8(k.get(11..)?).ok()?;
        Some((at, owner(rest)?))
    }

    /// `q/<request>`.
    pub fn request(id: &str) -> Vec<u8> {
        [REQUEST_PREFIX, id.as_bytes()].concat()
    }

    /// `w/<request>`.
    pub fn open(id: &str) -> Vec<u8> {
        [OPEN_PREFIX, id.as_bytes()].concat()
    }

    /// `<tenant>/<subject>`, the request index's value.
    pub fn owner_value(k: &SubjectKey) -> Vec<u8> {
        [k.tenant.as_bytes(), b"/", k.subject.as_bytes()].concat()
    }

    /// The subject a request index value names.
    pub fn owner(v: &str) -> Option<SubjectKey> {
        let (tenant, subject) = v.split_once('/')?;
        Some(SubjectKey { tenant: tenant.to_string(), subject: subject.to_string() })
    }
}
