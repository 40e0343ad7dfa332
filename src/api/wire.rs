//! The API's bodies as types: every request `retentiond ctl` sends and every
//! answer it reads. The daemon builds the answers from these types and ctl
//! reads them back into the same types, so a renamed or retyped field
//! breaks the build on both sides instead of showing `-` in a table.
//!
//! # Bytes on the wire
//! Most answers were once built with `json!`, which (serde_json without
//! `preserve_order`) sorts keys alphabetically; they are still sent as a
//! [`serde_json::Value`], sorted the same way, so field order here is free
//! to follow the meaning. [`Approval`] and [`PolicyReport`] were always
//! serialized as structs: they keep their declared order (`size` before
//! `digest`). `tests/wire_bytes.rs` pins the bytes.
//!
//! # Old and new daemons
//! A field some daemons leave out is an `Option` (missing reads as `None`).
//! Where a missing field and a `null` one mean different things (a `null`
//! `guard_batch` is "no batch held", a missing one "this daemon does not
//! say"), it is an `Option<Option<_>>`: the outer `None` is "missing".
//! Unknown fields are ignored, so a newer daemon may add some.
//!
//! Times are RFC 3339 text as [`crate::time::fmt_rfc3339`] writes them,
//! shown and sorted as served: a client never reformats a daemon's time.

use crate::domain::guard::WindowKind;
use crate::domain::lifecycle::{CopyState, State};
use crate::domain::policy::{Billing, Cause, StoreClass, TerminationReason};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub use crate::audit::AuditRecord;
pub use crate::certificate::Certificate;
pub use crate::receipt::Receipt;
pub use holds::{HoldList, ListedHold};
pub use privacy::{
    DecisionEvent, PersonalStoreView, RequestClass, RequestList, RequestSummary, RequestView, SubjectClass, SubjectView,
};

mod holds;
mod privacy;

/// Reads a field that is present (`Some`), even as `null` (`Some(None)`);
/// with `#[serde(default)]` a missing field stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// Errors.

/// Every refusal (4xx) and failure (5xx): `{"error":..}`, with the field it
/// is about when there is one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field at fault (400), e.g. `product`, `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a batch (a JSON array), the position of the event at fault, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The limit exceeded (413): `events_per_request` or `bytes_per_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// That limit's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

// POST /v1/events.

/// The answer to `POST /v1/events`: one result per event, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventsAnswer {
    /// The results.
    pub results: Vec<EventResult>,
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventResult {
    /// The event's id.
    pub event_id: String,
    /// `applied`, `duplicate` or `rejected` (as the engine words it).
    pub status: String,
    /// The field a rejection is about (product-spec §4; no daemon sets it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A `hold.placed` or `hold.released` event, as `ctl hold` builds it (the
/// daemon parses every event strictly: [`crate::domain::event::parse_event`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HoldEvent {
    /// Unique; a retry with the same id is answered `duplicate`.
    pub event_id: String,
    /// `hold.placed` or `hold.released`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the hold was placed or released.
    pub at: String,
    /// The tenant.
    pub tenant: String,
    /// The hold's id.
    pub hold_id: String,
    /// The resource; none for a hold on the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Who demands it (placing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Why (placing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the hold is due for review (placing only; optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_at: Option<String>,
}

// GET /v1/resources/{id}.

/// A resource as `GET /v1/resources/{id}` shows it (product-spec §4): where
/// it stands, the deletion that decides its fate, every buffer, hold, copy
/// and line of history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    /// Its id.
    pub resource: String,
    /// Its tenant.
    pub tenant: String,
    /// Its product.
    pub product: String,
    /// How it is paid for.
    pub billing: Billing,
    /// When it was created.
    pub created_at: String,
    /// The end of a prepaid term.
    pub term_end: Option<String>,
    /// Where it stands.
    pub state: State,
    /// The cause of the deciding buffer (the one that deletes first).
    pub cause: Option<Cause>,
    /// Its termination reason.
    pub reason: Option<TerminationReason>,
    /// When the deciding buffer started.
    pub buffer_started_at: Option<String>,
    /// When it ends: nothing is deleted before.
    pub delete_after: Option<String>,
    /// The policy version that set `delete_after`.
    pub policy_version: Option<String>,
    /// A later start set by released holds (shown with a deciding buffer).
    pub not_before: Option<String>,
    /// When deletion started.
    pub deletion_started_at: Option<String>,
    /// The expiry and release buffers.
    pub buffers: BuffersView,
    /// Unpaid fees.
    pub arrears: Option<ArrearsView>,
    /// An early termination.
    pub termination: Option<TerminationView>,
    /// Holds in force.
    pub holds: Vec<HoldView>,
    /// Every copy of its data.
    pub copies: Vec<CopyView>,
    /// What happened to it, oldest first.
    pub history: Vec<HistoryLine>,
}

/// The buffers that are not about arrears or a termination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuffersView {
    /// After the term end.
    pub expiry: Option<BufferView>,
    /// After the tenant released it (no buffer: ends when it starts).
    pub release: Option<BufferView>,
}

/// A running buffer: data kept until `delete_after`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BufferView {
    /// Why it runs.
    pub cause: Cause,
    /// The termination reason, for a termination buffer.
    pub reason: Option<TerminationReason>,
    /// When it started.
    pub started_at: String,
    /// When it ends.
    pub delete_after: String,
    /// The policy version that set `delete_after`.
    pub policy_version: String,
    /// Set when the event came so late that `delete_after` was lifted to
    /// this floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_event_floor: Option<String>,
}

/// Unpaid fees, with the late fee accrued so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArrearsView {
    /// When they started.
    pub started_at: String,
    /// The amount overdue, as reported.
    pub amount: Option<Decimal>,
    /// Its currency.
    pub currency: Option<String>,
    /// The arrears buffer, once the grace has passed.
    pub buffer: Option<BufferView>,
    /// The late fee so far; left out without an amount or when it does not
    /// fit a decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_fee: Option<Decimal>,
    /// The whole days it is counted over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_fee_days: Option<i64>,
    /// The product's rate, e.g. `0.05%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_fee_per_day: Option<String>,
}

/// An early termination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TerminationView {
    /// When.
    pub at: String,
    /// Why.
    pub reason: TerminationReason,
    /// Its buffer, once `at` has passed.
    pub buffer: Option<BufferView>,
}

/// A hold in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HoldView {
    /// Its id.
    pub hold_id: String,
    /// Who demands it.
    pub authority: String,
    /// Why.
    pub reason: String,
    /// What it covers.
    pub scope: HoldScope,
    /// When it was placed.
    pub placed_at: String,
    /// When it is due for review, if it was placed with a date (it stays
    /// in force past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_at: Option<String>,
}

/// What a hold covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldScope {
    /// Every resource of the tenant.
    Tenant,
    /// This resource.
    Resource,
}

/// One copy of the resource's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CopyView {
    /// The store.
    pub store: String,
    /// The copy's id there.
    pub copy: String,
    /// The store's class.
    pub class: StoreClass,
    /// Progress.
    pub state: CopyState,
    /// Retries are exhausted: an operator must retry.
    pub stuck: bool,
    /// Executor calls that failed so far.
    pub attempts: u32,
    /// When the executor is called next.
    pub next_attempt_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was confirmed gone (or restricted).
    pub done_at: Option<String>,
    /// When a backup copy expires.
    pub expires_at: Option<String>,
    /// How it ended.
    pub outcome: Option<String>,
}

/// One line of a resource's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryLine {
    /// When it happened.
    pub at: String,
    /// What happened, as an audit kind.
    pub what: String,
    /// A short sentence.
    pub detail: String,
}

// GET /v1/deletions.

/// The deletion forecast: every deletion due before `before`, by deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deletions {
    /// The time asked about.
    pub before: String,
    /// The deletions, by deadline, then resource id (a page: those of the
    /// page, in that order).
    pub deletions: Vec<Deletion>,
    /// Asked with `limit`: the token for the next page (`after=`), absent
    /// when this page is the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The personal erasures due before the same time (issue 12), by date:
    /// listed whole with the first page (without `after`), at most 10,000.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal: Vec<PersonalErasure>,
    /// True when `personal` was cut at 10,000.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub personal_truncated: bool,
}

/// One class of a subject's personal data to be erased (issue 12).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PersonalErasure {
    /// The tenant.
    pub tenant: String,
    /// The subject (the tenant's id for the account holder).
    pub subject: String,
    /// The class.
    pub class: String,
    /// `delete` or `anonymize`.
    pub erasure: String,
    /// When it may start (its date, not before its legal minimum).
    #[schema(format = DateTime)]
    pub erase_after: String,
    /// `account_closed`, or the erasure request's id.
    pub scheduled_by: String,
    /// The privacy policy version that scheduled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// What stops it: `hold:ID`, `dry_run`, `paused`, `clock_anomaly`, `guard`.
    pub blockers: Vec<String>,
}

/// One deletion in the forecast: under way, running, or projected from a
/// future term end or arrears grace. A resource whose product is no longer
/// configured is listed without a deadline, `reason`, `policy_version` or
/// `projected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deletion {
    /// The resource.
    pub resource: String,
    /// Its tenant.
    pub tenant: String,
    /// Its product.
    pub product: String,
    /// Where it stands.
    pub state: State,
    /// Why it is deleted.
    pub cause: Option<Cause>,
    /// Its termination reason (missing for an unconfigured product).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TerminationReason>)]
    pub reason: Option<Option<TerminationReason>>,
    /// When.
    pub deadline: Option<String>,
    /// The policy version that set it (missing for an unconfigured product).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub policy_version: Option<Option<String>>,
    /// True when its buffer has yet to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<bool>,
    /// What stops it: `hold:ID`, `dry_run`, `paused`, `clock_anomaly`,
    /// `guard`, or an unconfigured product.
    pub blockers: Vec<String>,
    /// For a deletion under way, the copies not yet done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_copies: Option<Vec<PendingCopy>>,
}

/// A copy a deletion under way still waits on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingCopy {
    /// The store.
    pub store: String,
    /// The copy's id there.
    pub copy: String,
    /// Progress.
    pub state: CopyState,
    /// Retries are exhausted.
    pub stuck: bool,
    /// Failed calls so far.
    pub attempts: u32,
    /// When the executor is called next.
    pub next_attempt_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
}

// GET /v1/restore-check.

/// Whether a backup may be restored, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreCheck {
    /// True when restoring is allowed.
    pub allowed: bool,
    /// Why, for a person.
    pub reason: String,
    /// For a tenant: each resource that may not be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Vec<Refused>>,
}

/// A resource whose data may not be restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Refused {
    /// The resource.
    pub resource: String,
    /// Why not.
    pub reason: String,
}

// GET /v1/audit.

/// Audit records after a sequence number, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The records, as in the log.
    pub records: Vec<AuditRecord>,
}

// GET /readyz.

/// Readiness with the daemon-wide gates, the clock and the policies in
/// force. `ctl status` shows each field the daemon reports, and only those:
/// all but `ready` are optional, since older daemons report fewer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// The engine completed a step within 5 s.
    pub ready: bool,
    /// The daemon's clock (a manual clock may be far from the caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// Deletions are paused by an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The mass-deletion guard stops deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_tripped: Option<bool>,
    /// The batch the guard holds for approval (`null`: none).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<GuardBatch>)]
    pub guard_batch: Option<Option<GuardBatch>>,
    /// A wall-clock jump stops deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_anomaly: Option<bool>,
    /// Executors are not called (`safety.dry_run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The clock source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockKind>,
    /// Each product's policy version in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BTreeMap<String, String>>,
    /// The last reload's outcome (`null`: none since start).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LastReload>)]
    pub last_reload: Option<Option<LastReload>>,
}

/// The batch a tripped guard holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GuardBatch {
    /// How many resources.
    pub size: u64,
    /// Hex SHA-256 of the sorted ids: what `approve` names.
    pub digest: String,
    /// When the guard tripped.
    pub tripped_at: String,
    /// The window it would have overflowed.
    pub window: WindowKind,
}

/// Where the daemon's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// The machine's clock.
    System,
    /// Moved only through `POST /v1/admin/clock`.
    Manual,
}

/// How the last reload ended: accepted with what changed, or refused with
/// why (the config in force stays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LastReload {
    /// When.
    pub at: String,
    /// True when the new config is in force.
    pub ok: bool,
    /// Products whose policy version changed (accepted only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// Products added (accepted only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<Vec<String>>,
    /// Products removed (accepted only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<String>>,
    /// Why it was refused (file, line, column and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// POST /v1/admin/*.

/// `POST /v1/admin/clock`: exactly one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockRequest {
    /// Let this long pass ("15d").
    #[schema(value_type = super::openapi::Duration)]
    Advance(String),
    /// Set the wall reading (RFC 3339).
    #[schema(value_type = super::openapi::Time)]
    Set(String),
}

/// The clock's reading after a move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClockAnswer {
    /// The new reading.
    pub now: String,
}

/// The body of `pause` and `resume`, which take no arguments: `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoArguments {}

/// The answer to `pause` and `resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Paused {
    /// Deletions are paused now.
    pub paused: bool,
}

/// `POST /v1/admin/approve`, optionally naming the batch seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApproveRequest {
    /// Approve only this batch (refused with 409 if another is held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_digest: Option<String>,
}

/// What `approve` lifted. Declared order is wire order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// `guard` and/or `clock_anomaly`.
    pub approved: Vec<String>,
    /// The batch released, if the guard held one.
    pub batch: Option<BatchSummary>,
}

/// A released batch. Declared order is wire order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchSummary {
    /// How many resources.
    pub size: u64,
    /// Hex SHA-256 of the sorted ids.
    pub digest: String,
}

/// `POST /v1/admin/retry`: a resource's stuck copies, or only one store's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetryRequest {
    /// The resource.
    #[schema(value_type = super::openapi::StoredId)]
    pub resource: String,
    /// Only this store's copy (`null`: every stuck copy).
    pub store: Option<String>,
}

/// `POST /v1/admin/retry-subject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetrySubjectRequest {
    /// The tenant.
    #[schema(value_type = super::openapi::StoredId)]
    pub tenant: String,
    /// The subject (the tenant's id for the account holder).
    #[schema(value_type = super::openapi::StoredId)]
    pub subject: String,
    /// Only this store's calls (`null`: every stuck one).
    pub store: Option<String>,
}

/// How many copies are called again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    /// The count.
    pub retried: u64,
}

/// `POST /v1/admin/apply-policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyPolicyRequest {
    /// The product.
    #[schema(value_type = super::openapi::Id)]
    pub product: String,
}

/// What `apply-policy` did. Declared order is wire order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReport {
    /// The product.
    pub product: String,
    /// Its policy version now applied.
    pub policy_version: String,
    /// Deadlines that moved.
    pub rescheduled: Vec<Rescheduled>,
    /// Resources of the product left as they were.
    pub unchanged: u64,
}

/// One deadline moved by `apply-policy`. Declared order is wire order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rescheduled {
    /// The resource.
    pub resource: String,
    /// Its deletion date before.
    pub from: String,
    /// Its deletion date now.
    pub to: String,
}
