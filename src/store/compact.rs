//! The compact encoding (version 2) of the two records written once per
//! resource and once per event: `r/<resource>` and `e/<event_id>`
//! (issue 11: a resource cost about 3.2 KB in sled, mostly JSON field
//! names, RFC 3339 texts and history sentences).
//!
//! A v2 value is one byte `2` then [postcard](https://docs.rs/postcard) of
//! the mirror types below: fields in a fixed order, times as seconds and
//! nanoseconds (zigzag varints), enums as the codes written out here (never
//! their declaration order, which a refactor may change), and the words
//! that history sentences are made of as indexes into [`WORDS`]. The mirror
//! types are built by destructuring the domain types, so a field added to
//! [`Resource`] does not compile until it is stored here too.
//!
//! Version 1 records are JSON and begin with `{`; they are still read (the
//! migration path: read both, write v2). A resource with a hold that has a
//! review date is written as version 3 ([`V3`]: v2 with the review fields
//! on each hold); others stay v2. Any other leading byte is a version this
//! build does not know and is refused, never guessed at.
//!
//! Changing anything here changes the format: `v2_bytes_are_pinned` spells
//! a record out byte by byte. [`WORDS`] may only grow at its end (a word a
//! newer build added is an unknown index to an older one: refused).

use super::record::RecordError;
use super::EventOutcome;
use crate::domain::event::Billing;
use crate::domain::lifecycle::{
    Arrears, Buffer, CopyState, DataCopy, HistoryEntry, Hold, Notice, NoticeKind, Resource, State, Termination,
};
use crate::domain::policy::{Cause, StoreClass, TerminationReason};
use crate::time::{fmt_rfc3339, parse_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};

/// The leading byte of a v2 record: the version this build writes. Version
/// 1 (JSON) is still read; any other is refused rather than guessed at (a
/// misread deadline could delete early).
pub(crate) const V2: u8 = 2;

/// The leading byte of a v3 resource record: v2 whose holds carry their
/// review date and its report ([`HoldV3`]). Written only for a resource
/// with such a hold, so every other record keeps the v2 bytes that older
/// builds read (and one that holds a review date is refused by them,
/// never read without it).
pub(crate) const V3: u8 = 3;

/// Words of history sentences, history kinds and copy outcomes, stored as
/// their index. Frozen: append only.
const WORDS: &[&str] = &[
    // History kinds (audit kinds and event types).
    "resource.created",
    "resource.renewed",
    "resource.terminated",
    "resource.reinstated",
    "resource.released",
    "arrears.started",
    "arrears.settled",
    "hold.placed",
    "hold.released",
    "backup.created",
    "buffer.started",
    "deletion.scheduled",
    "deletion.rescheduled",
    "deletion.cancelled",
    "deletion.started",
    "copy.deleted",
    "copy.restricted",
    "copy.purge_started",
    "copy.purged",
    "copy.failed",
    "copy.stuck",
    "copy.retry",
    "copy.restriction_overdue",
    "resource.deleted",
    "resource.purged",
    "notice.sent",
    "notice.skipped",
    // Event outcomes and copy outcomes.
    "applied",
    "rejected",
    "deleted",
    "restricted",
    "purged",
    "removed_by_backup_system",
    // Pieces of history sentences (src/domain/lifecycle).
    "created (",
    ", prepaid, term ends ",
    ", postpaid)",
    "renewed until ",
    "termination dated before a later reinstatement: moot",
    "terminated: ",
    "termination withdrawn",
    "reinstatement dated before the termination: moot",
    "not terminated: recorded",
    "released by the tenant: delete without buffer",
    "arrears dated before a later settlement: moot",
    "fees in arrears",
    "arrears settled",
    "hold ",
    " placed by ",
    " dated before its release: moot",
    " released",
    "backup copy ",
    "copy ",
    " in store ",
    " registered",
    " removed by the backup system",
    " restricted past its limit",
    " stuck copies retried by an operator",
    "expiry",
    "termination",
    "arrears",
    "release",
    " buffer started",
    " deletion scheduled for ",
    " (policy ",
    " deletion rescheduled to ",
    " by an operator",
    " deletion cancelled: ",
    "deletion of ",
    " copies started",
    "online and cache copies deleted",
    "every copy deleted",
    " notice sent",
    " notice not sent",
    "renewal_reminder",
    "buffer_started",
    "deletion_warning",
    "deletion_completed",
    // Audit kinds not above (the outbox's records).
    "event.applied",
    "event.rejected",
    "copy.registered",
    "notice.failed",
    "notice.superseded",
    "deletions.paused",
    "deletions.resumed",
    "guard.tripped",
    "guard.approved",
    "clock.anomaly",
    "config.reloaded",
    "config.reload_failed",
    "policy.applied",
    "sweep.repaired",
];

/// A time: seconds since 1970 and nanoseconds (chrono's own split, leap
/// seconds included).
#[derive(Serialize, Deserialize)]
pub(super) struct Ts(i64, u32);

pub(super) fn ts(t: Timestamp) -> Ts {
    Ts(t.timestamp(), t.timestamp_subsec_nanos())
}

fn opt_ts(t: Option<Timestamp>) -> Option<Ts> {
    t.map(ts)
}

impl Ts {
    pub(super) fn get(self) -> Result<Timestamp, RecordError> {
        chrono::DateTime::from_timestamp(self.0, self.1).ok_or(RecordError::Field("time"))
    }
}

fn get_ts(t: Option<Ts>) -> Result<Option<Timestamp>, RecordError> {
    t.map(Ts::get).transpose()
}

/// A string that is often one of [`WORDS`].
#[derive(Serialize, Deserialize)]
pub(super) enum Text {
    /// An index into [`WORDS`].
    Word(u16),
    /// Any other string.
    Own(String),
}

fn word_index(s: &str) -> Option<u16> {
    WORDS.iter().position(|w| *w == s).map(|i| i as u16)
}

pub(super) fn text(s: &str) -> Text {
    word_index(s).map_or_else(|| Text::Own(s.to_owned()), Text::Word)
}

fn word(i: u16) -> Result<&'static str, RecordError> {
    WORDS.get(i as usize).copied().ok_or(RecordError::Field("word"))
}

impl Text {
    pub(super) fn get(self) -> Result<String, RecordError> {
        match self {
            Text::Word(i) => word(i).map(str::to_owned),
            Text::Own(s) => Ok(s),
        }
    }
}

/// A piece of a history sentence.
#[derive(Serialize, Deserialize)]
enum Piece {
    /// Text as it is.
    Own(String),
    /// An index into [`WORDS`].
    Word(u16),
    /// A time, written as [`fmt_rfc3339`] writes it.
    Time(Ts),
}

/// The RFC 3339 time that `s` starts with, and its length, when
/// [`fmt_rfc3339`] gives back exactly those bytes.
pub(super) fn time_prefix(s: &str) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 1
        || !shape.iter().zip(b).all(|(p, c)| if *p == b'd' { c.is_ascii_digit() } else { p == c })
    {
        return None;
    }
    let mut end = shape.len();
    if b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if b.get(end) != Some(&b'Z') {
        return None;
    }
    let candidate = &s[..=end];
    let t = parse_rfc3339(candidate).ok()?;
    (fmt_rfc3339(t) == candidate).then_some((t, end + 1))
}

/// The indexes of the [`WORDS`] that start with `byte`, in order: a
/// sentence is split by trying, at each position, only the words that can
/// match there (issue 11: trying all of them at every character made
/// encoding a resource's history the largest cost of writing it).
fn words_starting_with(byte: u8) -> &'static [u16] {
    static BY_FIRST_BYTE: std::sync::OnceLock<Vec<Vec<u16>>> = std::sync::OnceLock::new();
    let table = BY_FIRST_BYTE.get_or_init(|| {
        let mut table = vec![Vec::new(); 256];
        for (k, w) in WORDS.iter().enumerate() {
            if let Some(&b) = w.as_bytes().first() {
                table[usize::from(b)].push(k as u16);
            }
        }
        table
    });
    &table[usize::from(byte)]
}

/// Splits a sentence into words, times and the rest; concatenated, the
/// pieces give back exactly `s`.
fn pieces(s: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut own = String::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let found = time_prefix(rest).map(|(t, n)| (Piece::Time(ts(t)), n)).or_else(|| {
            words_starting_with(rest.as_bytes()[0])
                .iter()
                .map(|&k| (k, WORDS[usize::from(k)]))
                .filter(|(_, w)| rest.starts_with(*w))
                .max_by_key(|(k, w)| (w.len(), *k))
                .map(|(k, w)| (Piece::Word(k), w.len()))
        });
        match found {
            Some((piece, n)) => {
                if !own.is_empty() {
                    out.push(Piece::Own(std::mem::take(&mut own)));
                }
                out.push(piece);
                i += n;
            }
            None => {
                let c = rest.chars().next().expect("i is below the length, on a char boundary");
                own.push(c);
                i += c.len_utf8();
            }
        }
    }
    if !own.is_empty() {
        out.push(Piece::Own(own));
    }
    out
}

fn sentence(pieces: Vec<Piece>) -> Result<String, RecordError> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Own(t) => s.push_str(&t),
            Piece::Word(i) => s.push_str(word(i)?),
            Piece::Time(t) => s.push_str(&fmt_rfc3339(t.get()?)),
        }
    }
    Ok(s)
}

/// Writes out the two directions of a code table: each variant and its
/// stored byte, checked exhaustively when encoding.
macro_rules! codes {
    ($enc:ident, $dec:ident, $ty:ty, $what:literal, { $($variant:path = $code:literal),* $(,)? }) => {
        fn $enc(v: $ty) -> u8 {
            match v {
                $($variant => $code,)*
            }
        }
        fn $dec(c: u8) -> Result<$ty, RecordError> {
            match c {
                $($code => Ok($variant),)*
                _ => Err(RecordError::Field($what)),
            }
        }
    };
}

codes!(state_code, state_of, State, "state", {
    State::Active = 0, State::Retained = 1, State::Deleting = 2, State::Deleted = 3, State::Purged = 4,
});
codes!(copy_state_code, copy_state_of, CopyState, "copy state", {
    CopyState::Present = 0, CopyState::Deleting = 1, CopyState::Restricting = 2,
    CopyState::Restricted = 3, CopyState::Purging = 4, CopyState::Deleted = 5,
});
codes!(billing_code, billing_of, Billing, "billing", { Billing::Prepaid = 0, Billing::Postpaid = 1 });
codes!(class_code, class_of, StoreClass, "store class", {
    StoreClass::Online = 0, StoreClass::Cache = 1, StoreClass::Backup = 2,
});
codes!(cause_code, cause_of, Cause, "cause", {
    Cause::Expiry = 0, Cause::Termination = 1, Cause::Arrears = 2, Cause::Release = 3,
});
codes!(reason_code, reason_of, TerminationReason, "termination reason", {
    TerminationReason::Agreement = 0, TerminationReason::Violation = 1, TerminationReason::Attack = 2,
    TerminationReason::Discontinued = 3, TerminationReason::ProviderOutage = 4,
    TerminationReason::AccountClosed = 5,
});
codes!(notice_kind_code, notice_kind_of, NoticeKind, "notice kind", {
    NoticeKind::RenewalReminder = 0, NoticeKind::BufferStarted = 1,
    NoticeKind::DeletionWarning = 2, NoticeKind::DeletionCompleted = 3,
});

#[derive(Serialize, Deserialize)]
struct BufferV2 {
    cause: u8,
    reason: Option<u8>,
    started_at: Ts,
    delete_after: Ts,
    policy_version: String,
    late_floor: Option<Ts>,
}

impl BufferV2 {
    fn of(b: &Buffer) -> BufferV2 {
        let Buffer { cause, reason, started_at, delete_after, policy_version, late_floor } = b;
        BufferV2 {
            cause: cause_code(*cause),
            reason: reason.map(reason_code),
            started_at: ts(*started_at),
            delete_after: ts(*delete_after),
            policy_version: policy_version.clone(),
            late_floor: opt_ts(*late_floor),
        }
    }

    fn get(self) -> Result<Buffer, RecordError> {
        Ok(Buffer {
            cause: cause_of(self.cause)?,
            reason: self.reason.map(reason_of).transpose()?,
            started_at: self.started_at.get()?,
            delete_after: self.delete_after.get()?,
            policy_version: self.policy_version,
            late_floor: get_ts(self.late_floor)?,
        })
    }
}

fn opt_buffer(b: &Option<Buffer>) -> Option<BufferV2> {
    b.as_ref().map(BufferV2::of)
}

fn get_buffer(b: Option<BufferV2>) -> Result<Option<Buffer>, RecordError> {
    b.map(BufferV2::get).transpose()
}

#[derive(Serialize, Deserialize)]
struct ArrearsV2 {
    started_at: Ts,
    /// The amount as its decimal text (scale kept).
    amount: Option<String>,
    currency: Option<String>,
    buffer: Option<BufferV2>,
    grace_ends_at: Option<Ts>,
    late_floor: Option<Ts>,
}

#[derive(Serialize, Deserialize)]
struct TerminationV2 {
    at: Ts,
    reason: u8,
    buffer: Option<BufferV2>,
    late_floor: Option<Ts>,
}

#[derive(Serialize, Deserialize)]
struct HoldV2 {
    hold_id: String,
    authority: String,
    reason: String,
    tenant_wide: bool,
    placed_at: Ts,
}

/// A hold of a v3 record: v2's, then its review date and when it was
/// reported due.
#[derive(Serialize, Deserialize)]
struct HoldV3 {
    hold: HoldV2,
    review_at: Option<Ts>,
    review_reported_at: Option<Ts>,
}

/// A hold as one version of the record stores it.
trait StoredHold: Sized {
    /// The stored form of `h`.
    fn of(h: &Hold) -> Self;
    /// The hold it stores.
    fn get(self) -> Result<Hold, RecordError>;
}

impl StoredHold for HoldV2 {
    fn of(h: &Hold) -> HoldV2 {
        // The review fields are v3's: a hold with them is never written here.
        let Hold { hold_id, authority, reason, tenant_wide, placed_at, review_at: _, review_reported_at: _ } = h;
        HoldV2 {
            hold_id: hold_id.clone(),
            authority: authority.clone(),
            reason: reason.clone(),
            tenant_wide: *tenant_wide,
            placed_at: ts(*placed_at),
        }
    }

    fn get(self) -> Result<Hold, RecordError> {
        Ok(Hold {
            hold_id: self.hold_id,
            authority: self.authority,
            reason: self.reason,
            tenant_wide: self.tenant_wide,
            placed_at: self.placed_at.get()?,
            review_at: None,
            review_reported_at: None,
        })
    }
}

impl StoredHold for HoldV3 {
    fn of(h: &Hold) -> HoldV3 {
        HoldV3 { hold: HoldV2::of(h), review_at: opt_ts(h.review_at), review_reported_at: opt_ts(h.review_reported_at) }
    }

    fn get(self) -> Result<Hold, RecordError> {
        Ok(Hold {
            review_at: get_ts(self.review_at)?,
            review_reported_at: get_ts(self.review_reported_at)?,
            ..self.hold.get()?
        })
    }
}

#[derive(Serialize, Deserialize)]
struct CopyV2 {
    store: String,
    /// `None` when the copy id is the store's name (online and cache).
    copy: Option<String>,
    class: u8,
    state: u8,
    attempts: u32,
    next_attempt_at: Option<Ts>,
    last_error: Option<String>,
    done_at: Option<Ts>,
    expires_at: Option<Ts>,
    stuck: bool,
    done_seq: Option<u64>,
    outcome: Option<Text>,
    restricted_until: Option<Ts>,
    restriction_overdue: bool,
}

#[derive(Serialize, Deserialize)]
struct HistoryV2 {
    at: Ts,
    what: Text,
    detail: Vec<Piece>,
}

#[derive(Serialize, Deserialize)]
struct NoticeV2 {
    key: String,
    kind: u8,
    due_at: Ts,
    date: Option<Ts>,
    cause: Option<u8>,
    offset_secs: Option<u64>,
    sent_at: Option<Ts>,
    attempts: u32,
    next_attempt_at: Option<Ts>,
    superseded: bool,
}

/// A resource record without its id, which is its key; its holds as v2
/// ([`HoldV2`]) or v3 ([`HoldV3`]) stores them.
#[derive(Serialize, Deserialize)]
struct ResourceV2<H> {
    due: Option<Ts>,
    tenant: String,
    product: String,
    billing: u8,
    created_at: Ts,
    term_end: Option<Ts>,
    expiry: Option<BufferV2>,
    expiry_late_floor: Option<Ts>,
    arrears: Option<ArrearsV2>,
    arrears_settled_at: Option<Ts>,
    settlement_spent: bool,
    termination: Option<TerminationV2>,
    reinstated_at: Option<Ts>,
    reinstatement_spent: bool,
    release: Option<BufferV2>,
    holds: Vec<H>,
    released_holds: Vec<(String, Ts)>,
    not_before: Option<Ts>,
    state: u8,
    deciding: Option<BufferV2>,
    deletion_started_at: Option<Ts>,
    guard_approved: bool,
    copies: Vec<CopyV2>,
    history: Vec<HistoryV2>,
    notices: Vec<NoticeV2>,
}

fn copy_v2(c: &DataCopy) -> CopyV2 {
    let DataCopy {
        store,
        copy,
        class,
        state,
        attempts,
        next_attempt_at,
        last_error,
        done_at,
        expires_at,
        stuck,
        done_seq,
        outcome,
        restricted_until,
        restriction_overdue,
    } = c;
    CopyV2 {
        store: store.clone(),
        copy: (copy != store).then(|| copy.clone()),
        class: class_code(*class),
        state: copy_state_code(*state),
        attempts: *attempts,
        next_attempt_at: opt_ts(*next_attempt_at),
        last_error: last_error.clone(),
        done_at: opt_ts(*done_at),
        expires_at: opt_ts(*expires_at),
        stuck: *stuck,
        done_seq: *done_seq,
        outcome: outcome.as_deref().map(text),
        restricted_until: opt_ts(*restricted_until),
        restriction_overdue: *restriction_overdue,
    }
}

fn copy_of(c: CopyV2) -> Result<DataCopy, RecordError> {
    Ok(DataCopy {
        copy: c.copy.unwrap_or_else(|| c.store.clone()),
        store: c.store,
        class: class_of(c.class)?,
        state: copy_state_of(c.state)?,
        attempts: c.attempts,
        next_attempt_at: get_ts(c.next_attempt_at)?,
        last_error: c.last_error,
        done_at: get_ts(c.done_at)?,
        expires_at: get_ts(c.expires_at)?,
        stuck: c.stuck,
        done_seq: c.done_seq,
        outcome: c.outcome.map(Text::get).transpose()?,
        restricted_until: get_ts(c.restricted_until)?,
        restriction_overdue: c.restriction_overdue,
    })
}

fn notice_v2(n: &Notice) -> NoticeV2 {
    let Notice { key, kind, due_at, date, cause, offset_secs, sent_at, attempts, next_attempt_at, superseded } = n;
    NoticeV2 {
        key: key.clone(),
        kind: notice_kind_code(*kind),
        due_at: ts(*due_at),
        date: opt_ts(*date),
        cause: cause.map(cause_code),
        offset_secs: *offset_secs,
        sent_at: opt_ts(*sent_at),
        attempts: *attempts,
        next_attempt_at: opt_ts(*next_attempt_at),
        superseded: *superseded,
    }
}

fn notice_from(n: NoticeV2) -> Result<Notice, RecordError> {
    Ok(Notice {
        key: n.key,
        kind: notice_kind_of(n.kind)?,
        due_at: n.due_at.get()?,
        date: get_ts(n.date)?,
        cause: n.cause.map(cause_of).transpose()?,
        offset_secs: n.offset_secs,
        sent_at: get_ts(n.sent_at)?,
        attempts: n.attempts,
        next_attempt_at: get_ts(n.next_attempt_at)?,
        superseded: n.superseded,
    })
}

/// The bytes of a resource record: [`V2`] (or [`V3`] when a hold has a
/// review date or its report), then the record without the resource's id
/// (its key says it).
pub(crate) fn encode_resource(r: &Resource, due: Option<Timestamp>) -> Vec<u8> {
    if r.holds.iter().any(|h| h.review_at.is_some() || h.review_reported_at.is_some()) {
        let mut bytes = versioned(&record::<HoldV3>(r, due));
        bytes[0] = V3;
        bytes
    } else {
        versioned(&record::<HoldV2>(r, due))
    }
}

/// The stored form of `r`, its holds as `H`.
fn record<H: StoredHold>(r: &Resource, due: Option<Timestamp>) -> ResourceV2<H> {
    let Resource {
        id: _,
        tenant,
        product,
        billing,
        created_at,
        term_end,
        expiry,
        expiry_late_floor,
        arrears,
        arrears_settled_at,
        settlement_spent,
        termination,
        reinstated_at,
        reinstatement_spent,
        release,
        holds,
        released_holds,
        not_before,
        state,
        deciding,
        deletion_started_at,
        guard_approved,
        copies,
        history,
        notices,
    } = r;
    ResourceV2 {
        due: opt_ts(due),
        tenant: tenant.clone(),
        product: product.clone(),
        billing: billing_code(*billing),
        created_at: ts(*created_at),
        term_end: opt_ts(*term_end),
        expiry: opt_buffer(expiry),
        expiry_late_floor: opt_ts(*expiry_late_floor),
        arrears: arrears.as_ref().map(|a| {
            let Arrears { started_at, amount, currency, buffer, grace_ends_at, late_floor } = a;
            ArrearsV2 {
                started_at: ts(*started_at),
                amount: amount.map(|d| d.to_string()),
                currency: currency.clone(),
                buffer: opt_buffer(buffer),
                grace_ends_at: opt_ts(*grace_ends_at),
                late_floor: opt_ts(*late_floor),
            }
        }),
        arrears_settled_at: opt_ts(*arrears_settled_at),
        settlement_spent: *settlement_spent,
        termination: termination.as_ref().map(|t| {
            let Termination { at, reason, buffer, late_floor } = t;
            TerminationV2 {
                at: ts(*at),
                reason: reason_code(*reason),
                buffer: opt_buffer(buffer),
                late_floor: opt_ts(*late_floor),
            }
        }),
        reinstated_at: opt_ts(*reinstated_at),
        reinstatement_spent: *reinstatement_spent,
        release: opt_buffer(release),
        holds: holds.iter().map(H::of).collect(),
        released_holds: released_holds.iter().map(|(id, at)| (id.clone(), ts(*at))).collect(),
        not_before: opt_ts(*not_before),
        state: state_code(*state),
        deciding: opt_buffer(deciding),
        deletion_started_at: opt_ts(*deletion_started_at),
        guard_approved: *guard_approved,
        copies: copies.iter().map(copy_v2).collect(),
        history: history
            .iter()
            .map(|h| {
                let HistoryEntry { at, what, detail } = h;
                HistoryV2 { at: ts(*at), what: text(what), detail: pieces(detail) }
            })
            .collect(),
        notices: notices.iter().map(notice_v2).collect(),
    }
}

/// Decodes the v2 bytes (after [`V2`]) of the resource `id`'s record.
pub(crate) fn decode_resource(id: &str, body: &[u8]) -> Result<(Resource, Option<Timestamp>), RecordError> {
    decode_as::<HoldV2>(id, body)
}

/// Decodes the v3 bytes (after [`V3`]) of the resource `id`'s record.
pub(crate) fn decode_resource_v3(id: &str, body: &[u8]) -> Result<(Resource, Option<Timestamp>), RecordError> {
    decode_as::<HoldV3>(id, body)
}

/// Decodes a record whose holds are stored as `H`.
fn decode_as<H: StoredHold + for<'de> Deserialize<'de>>(
    id: &str,
    body: &[u8],
) -> Result<(Resource, Option<Timestamp>), RecordError> {
    let r: ResourceV2<H> = whole(body)?;
    let resource = Resource {
        id: id.to_owned(),
        tenant: r.tenant,
        product: r.product,
        billing: billing_of(r.billing)?,
        created_at: r.created_at.get()?,
        term_end: get_ts(r.term_end)?,
        expiry: get_buffer(r.expiry)?,
        expiry_late_floor: get_ts(r.expiry_late_floor)?,
        arrears: match r.arrears {
            None => None,
            Some(a) => Some(Arrears {
                started_at: a.started_at.get()?,
                amount: a.amount.map(|d| d.parse().map_err(|_| RecordError::Field("amount"))).transpose()?,
                currency: a.currency,
                buffer: get_buffer(a.buffer)?,
                grace_ends_at: get_ts(a.grace_ends_at)?,
                late_floor: get_ts(a.late_floor)?,
            }),
        },
        arrears_settled_at: get_ts(r.arrears_settled_at)?,
        settlement_spent: r.settlement_spent,
        termination: match r.termination {
            None => None,
            Some(t) => Some(Termination {
                at: t.at.get()?,
                reason: reason_of(t.reason)?,
                buffer: get_buffer(t.buffer)?,
                late_floor: get_ts(t.late_floor)?,
            }),
        },
        reinstated_at: get_ts(r.reinstated_at)?,
        reinstatement_spent: r.reinstatement_spent,
        release: get_buffer(r.release)?,
        holds: r.holds.into_iter().map(H::get).collect::<Result<_, RecordError>>()?,
        released_holds: r
            .released_holds
            .into_iter()
            .map(|(id, at)| Ok((id, at.get()?)))
            .collect::<Result<_, RecordError>>()?,
        not_before: get_ts(r.not_before)?,
        state: state_of(r.state)?,
        deciding: get_buffer(r.deciding)?,
        deletion_started_at: get_ts(r.deletion_started_at)?,
        guard_approved: r.guard_approved,
        copies: r.copies.into_iter().map(copy_of).collect::<Result<_, _>>()?,
        history: r
            .history
            .into_iter()
            .map(|h| Ok(HistoryEntry { at: h.at.get()?, what: h.what.get()?, detail: sentence(h.detail)? }))
            .collect::<Result<_, RecordError>>()?,
        notices: r.notices.into_iter().map(notice_from).collect::<Result<_, _>>()?,
    };
    Ok((resource, get_ts(r.due)?))
}

/// An event outcome: its status (usually a word) and its resource.
#[derive(Serialize, Deserialize)]
struct OutcomeV2 {
    status: Text,
    resource: Option<String>,
}

/// The v2 bytes of an event outcome (`e/<event_id>`).
pub(crate) fn encode_outcome(o: &EventOutcome) -> Vec<u8> {
    let EventOutcome { status, resource } = o;
    versioned(&OutcomeV2 { status: text(status), resource: resource.clone() })
}

/// Decodes the v2 bytes (after [`V2`]) of an event outcome.
pub(crate) fn decode_outcome(body: &[u8]) -> Result<EventOutcome, RecordError> {
    let o: OutcomeV2 = whole(body)?;
    Ok(EventOutcome { status: o.status.get()?, resource: o.resource })
}

pub(super) fn versioned<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_extend(v, vec![V2]).expect("records serialize")
}

/// Decodes `body`, refusing bytes left over (a record is one value).
pub(super) fn whole<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, RecordError> {
    match postcard::take_from_bytes(body)? {
        (v, []) => Ok(v),
        _ => Err(RecordError::Field("trailing bytes")),
    }
}

mod outbox;
#[cfg(test)]
pub(crate) use outbox::encode_audit;
pub(crate) use outbox::{decode_audit, decode_audit_chunk, encode_audit_chunks, CHUNK};

#[cfg(test)]
mod tests;
