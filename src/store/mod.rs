//! Durable state, behind the project's own [`Store`] trait, so everything
//! else speaks in resources, deadlines and event ids, and the engine can be
//! replaced (engineering-notes: sled lost unflushed writes on a plain crash).
//!
//! - [`SledStore`] (`sled.rs`): the daemon's database, the only module that
//!   imports sled.
//! - `record`: the keys and versioned record encodings of that database,
//!   and the deadline index's order, shared by every engine.
//! - `indexes`: the indexes kept from each record beside the deadline
//!   index (held or deleting, deletion starts, records to bring up to
//!   date, unsettled resources by product), for the forecast and start-up.
//! - `compact`: the compact (version 2) encoding of the records written
//!   once per resource and per event (issue 11: bytes a resource on disk).
//! - `hold_index`: the index of holds in force, by place, by authority and
//!   by review date (issue 13: `GET /v1/holds`, reviews due).
//! - `personal`: what the store keeps of personal data (issue 12):
//!   subjects by key, their deadline index, requests and open requests.
//! - [`MemoryStore`] (`memory.rs`): maps in memory, for tests.
//! - [`Hooked`] (`hooked.rs`): any engine with callbacks around its writes,
//!   for tests that watch or stall them.
//! - `conformance` (tests only): one test per promise of the [`Store`]
//!   contract, run against every engine.
//!
//! A [`WriteSet`] is applied atomically. Nothing is durable until
//! [`Store::flush`] returns; callers flush before acknowledging an event or
//! calling an executor.

mod compact;
#[cfg(test)]
mod conformance;
mod hold_index;
mod hooked;
pub(crate) mod indexes;
mod memory;
pub(crate) mod personal;
mod record;
mod sled;

pub use self::sled::SledStore;
pub use hold_index::{HoldCounts, HoldEntry, HoldFilter, HoldKey};
pub use hooked::Hooked;
pub(crate) use indexes::held_or_deleting;
pub use memory::MemoryStore;
pub use personal::{OpenRequest, SubjectKey};
pub use record::RecordError;

use crate::audit::{AuditHead, AuditRecord};
use crate::domain::lifecycle::{CopyState, Resource, TenantHolds};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A storage failure. Every one of them stops deletions (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (I/O, corruption, lock held by another
    /// process: sled's message then says "could not acquire lock").
    #[error("database error: {0}")]
    Db(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database directory could not be created.
    #[error("database error: creating {}: {source}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored record could not be decoded (unknown version or corrupt).
    #[error("stored record {key} cannot be read: {reason}")]
    Decode {
        /// The record's key.
        key: String,
        /// Why.
        #[source]
        reason: RecordError,
    },
}

/// A daemon-wide switch that stops every deletion while it is on, kept
/// across restarts. A type rather than a name, so a misspelt switch cannot
/// silently read as "off".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// An operator paused deletions.
    Paused,
    /// The wall clock jumped against the monotonic clock: deletions wait
    /// until an operator approves (domain-rules: fail closed on time).
    ClockAnomaly,
    /// The mass-deletion guard held a batch: deletions wait for an
    /// operator's approval.
    GuardTripped,
}

impl Flag {
    /// Every switch.
    pub const ALL: [Flag; 3] = [Flag::Paused, Flag::ClockAnomaly, Flag::GuardTripped];

    /// The switch's name, as stored (`f/<name>`) and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Paused => "paused",
            Flag::ClockAnomaly => "clock_anomaly",
            Flag::GuardTripped => "guard_tripped",
        }
    }
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
    /// Daemon-wide switches to set.
    pub flags: Vec<(Flag, bool)>,
    /// Deletion certificates issued, by resource.
    pub certificates: Vec<(String, serde_json::Value)>,
    /// The mass-deletion guard's durable state, when it changed.
    pub guard: Option<crate::domain::guard::GuardState>,
    /// Subjects (personal data, issue 12) to write, each with when it is
    /// next due (the subjects' deadline index follows).
    pub subjects: Vec<(crate::domain::privacy::Subject, Option<Timestamp>)>,
}

impl StoreStats {
    /// Counts one resource and its copies (every engine's `stats` scan).
    pub(crate) fn count_resource(&mut self, r: &Resource) {
        self.tally(r, true);
    }

    /// Counts one resource and its copies in (`add`) or out: a commit that
    /// replaces a record counts the old one out and the new one in, so the
    /// counts stay equal to a recount without one (issue 11). A state whose
    /// count falls to 0 is removed, as a recount would leave it out.
    pub(crate) fn tally(&mut self, r: &Resource, add: bool) {
        let step = |n: &mut u64, by: u64| *n = if add { *n + by } else { n.saturating_sub(by) };
        let state = r.state.as_str();
        step(self.resources.entry(state).or_default(), 1);
        if self.resources.get(state) == Some(&0) {
            self.resources.remove(state);
        }
        for c in &r.copies {
            step(&mut self.copies_stuck, u64::from(c.stuck));
            step(&mut self.copies_restricted, u64::from(c.state == CopyState::Restricted));
            step(
                &mut self.copies_restriction_overdue,
                u64::from(c.restriction_overdue && matches!(c.state, CopyState::Restricted | CopyState::Restricting)),
            );
        }
    }
}

impl WriteSet {
    /// Adds a resource, replacing an earlier version of it in this set, so
    /// the deadline index is updated from the stored version exactly once.
    pub fn put_resource(&mut self, r: Resource, due: Option<Timestamp>) {
        self.resources.retain(|(old, _)| old.id != r.id);
        self.resources.push((r, due));
    }

    /// Adds a subject, replacing an earlier version of it in this set.
    pub fn put_subject(&mut self, s: crate::domain::privacy::Subject, due: Option<Timestamp>) {
        self.subjects.retain(|(old, _)| !(old.tenant == s.tenant && old.id == s.id));
        self.subjects.push((s, due));
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.subjects.is_empty()
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

/// The daemon's durable state: what an engine must promise. The engine
/// (`scheduler`) is the single writer; readers (API handlers, metrics) may
/// run on other threads at the same time. Every promise below is a test in
/// `store::conformance`, run against every engine (the test name follows
/// each promise); a new engine is added there with one line.
///
/// Ids are as [`crate::ids`] allows (never containing `/`). A write set
/// holds each resource at most once ([`WriteSet::put_resource`]).
///
/// **Writes.**
/// - [`commit`](Store::commit) applies a whole [`WriteSet`] or none of it,
///   and a reader on another thread sees all of it or none of it
///   (`a_commit_is_seen_whole_or_not_at_all`). When it returns, every part
///   is readable at once (`a_commit_is_readable_at_once`).
/// - Nothing is durable before [`flush`](Store::flush) returns; after it
///   returns, everything committed before survives a crash and a reopen.
///   Callers flush before acknowledging an event or calling an executor.
///   (The memory engine keeps nothing past the process; the sled engine's
///   reopen is tested in `sled.rs`.)
///
/// **The deadline index.**
/// - Each resource has one entry per its record's `due`, in the index while
///   `due` is `Some` and absent while it is `None`: rewriting a resource
///   removes its old entry (`the_due_index_follows_each_records_due`).
/// - Entries are ordered by time, times before 1970 first, ties by resource
///   id (`the_due_index_is_ordered_by_time_then_resource_id`). Times are
///   held to the millisecond, rounded down
///   (`due_times_are_held_to_the_millisecond`).
/// - [`due(now, limit)`](Store::due) lists entries at or before `now` (an
///   entry exactly at `now` included), earliest first, at most `limit`
///   (`due_includes_now_and_stops_at_the_limit`).
/// - [`due_after(entry, now, limit)`](Store::due_after) lists the same
///   entries as `due`, but only those ordered strictly after `entry`, so a
///   caller reading slices sees each entry once
///   (`due_after_an_entry_continues_in_index_order`).
/// - [`next_due_after(now)`](Store::next_due_after) is the earliest entry
///   strictly after `now` (`next_due_after_is_strictly_after_now`).
///
/// **Records.**
/// - [`resource`](Store::resource) returns the resource as last written;
///   [`for_each_resource`](Store::for_each_resource) visits each once, in
///   id order; [`resources_after`](Store::resources_after) gives them with
///   their index entries, in id order
///   (`resources_are_listed_once_in_id_order`), in slices each starting
///   strictly after the id it is given
///   (`slices_after_an_id_cover_every_resource_once`);
///   [`resource_count`](Store::resource_count) counts each once.
/// - [`tenant_resources`](Store::tenant_resources) lists the ids of the
///   resources written with that tenant, in id order, each once, and no
///   other tenant's (`tenant_resources_lists_that_tenants_resources`). A
///   resource is listed under the tenant it was first written with.
/// - Tenant holds, certificates and event outcomes read back as last
///   written, by key; never written reads as default, `None`, `None`
///   (`tenant_holds_certificates_and_event_outcomes_read_back_by_key`).
///
/// **The audit outbox.**
/// - [`outbox_after(seq)`](Store::outbox_after) returns the records with a
///   greater seq, in seq order; `outbox_done_through: Some(seq)` removes
///   those stored up to and including `seq`
///   (`the_outbox_is_trimmed_through_a_seq_and_read_after_one`), however
///   many records one commit holds and at whatever seq the trim falls
///   (`a_large_commits_outbox_reads_back_whole_and_trims_at_any_seq`).
/// - [`audit_head`](Store::audit_head) is the seq and hash of the last
///   audit record committed (genesis before any), unchanged by write sets
///   without audit records and by trimming
///   (`the_audit_head_follows_the_last_committed_record`).
///
/// **Daemon state.**
/// - [`clock`](Store::clock) is the manual clock reading as last written,
///   to the nanosecond (`the_manual_clock_reading_reads_back`).
/// - [`guard_state`](Store::guard_state) is the guard state as last
///   written, default before (`the_guard_state_reads_back`).
/// - [`flag`](Store::flag) is false for a switch never set, and each
///   switch reads back as last set, independently of the others
///   (`flags_default_to_false_and_read_back_each`).
/// - [`stats`](Store::stats) counts resources by state, stuck, restricted
///   and overdue copies, and index entries, with the earliest entry even
///   when past (`stats_count_states_copies_and_deadlines`), always equal to
///   a recount of every record and entry, however it is kept
///   (`stats_equal_a_recount_after_any_sequence_of_commits`).
/// - A fresh store reads empty throughout (`a_fresh_store_is_empty`).
///
/// **Indexes for the forecast and start-up** (issue 11: neither scans
/// every record). Each is kept from the records by every commit, like the
/// deadline index, and read back equal to a recount of the records
/// (`the_secondary_indexes_equal_a_recount_after_any_sequence_of_commits`).
/// - [`due_before(until, after, limit)`](Store::due_before) lists deadline
///   index entries strictly before `until` and strictly after the entry
///   `after`, in index order, at most `limit`; pages that each start after
///   the last entry of the one before list every entry before `until` once
///   (`due_before_pages_through_the_index_once`).
/// - [`held_or_deleting`](Store::held_or_deleting) lists, in id order, from
///   the first id after `after`, at most `limit`, the ids of the resources
///   that are `deleting`, or `active` or `retained` with a hold, and no
///   other (`held_or_deleting_lists_held_and_deleting_resources`).
/// - [`products_in_use`](Store::products_in_use) counts the resources not
///   yet settled ([`Resource::is_settled`]) by product, leaving out products
///   with none (`products_in_use_counts_unsettled_resources`).
/// - [`deletions_started_after(since)`](Store::deletions_started_after)
///   gives the deletion start times of the resources whose start an
///   operator did not approve, held to the millisecond (rounded up, so
///   never earlier than they were), earliest first: every one strictly
///   after `since`, as held (`deletions_started_after_lists_unapproved_starts`);
///   and, the same way, each distinct time a subject's class erasure began
///   without an operator's approval, as its last written record has them
///   (`subjects_erasure_starts_are_counted_with_the_deletion_starts`).
/// - [`needing_migration`](Store::needing_migration) lists, in id order,
///   the resources with arrears but neither a grace end nor a buffer, or a
///   restricted (or restricting) copy without a restriction limit after
///   their deletion started, and no other
///   (`needing_migration_lists_records_an_older_build_left_incomplete`).
///
/// **The index of holds** (issue 13), kept from the records like the
/// others and read back equal to a recount of them (in the same test as
/// the indexes above). A hold in force is one of a resource's own holds
/// (not `tenant_wide`: the copy a tenant-wide hold leaves on each of the
/// tenant's resources is not another hold), or one of a tenant's holds
/// ([`WriteSet::tenants`]); its [`HoldKey`] is its tenant, its resource
/// (none for a tenant-wide hold) and its id.
/// - [`holds(filter, after, limit)`](Store::holds) lists the holds in
///   force that `filter` admits, in [`HoldKey`] order, strictly after
///   `after`, at most `limit`; pages that each start after the last key of
///   the one before list each once; a released hold is gone from it
///   (`holds_are_listed_in_key_order_by_tenant_and_authority`).
/// - [`reviews_due(now, limit)`](Store::reviews_due) lists the holds whose
///   `review_at` is at or before `now` and not yet reported
///   (`review_reported_at` unset), earliest first, at most `limit`;
///   [`next_review_after(now)`](Store::next_review_after) is the earliest
///   such date strictly after `now`. Dates are held to the millisecond,
///   rounded up, so never reported early
///   (`reviews_due_lists_unreported_review_dates_earliest_first`).
/// - [`hold_counts`](Store::hold_counts) counts the holds in force, and
///   those with `review_reported_at` set.
///
/// **Personal data** (issue 12). A subject's record is keyed by its
/// [`SubjectKey`] and written with when it is next due, like a resource.
/// - [`subject`](Store::subject) reads back the subject as last written;
///   [`tenant_subjects`](Store::tenant_subjects) lists a tenant's subject
///   ids in id order, each once, and no other tenant's
///   (`subjects_read_back_and_are_listed_by_tenant`).
/// - The subjects' deadline index holds one entry per subject whose `due`
///   is `Some`, ordered by time (to the millisecond, rounded down) then
///   key; [`subjects_due(after, until, limit)`](Store::subjects_due) lists
///   the entries at or before `until`, strictly after the entry `after`,
///   earliest first, at most `limit`;
///   [`next_subject_due_after(now)`](Store::next_subject_due_after) is the
///   earliest strictly after `now`
///   (`the_subjects_due_index_follows_each_records_due`).
/// - Every request of every subject is in the request index:
///   [`request_owner`](Store::request_owner) names its subject, and
///   [`requests_after`](Store::requests_after) pages through the ids in
///   order; [`open_requests`](Store::open_requests) lists the requests not
///   yet closed, by id, as their subjects were last written, equal to a
///   recount (`requests_are_indexed_and_open_ones_listed`).
///
/// **Failures.** Every failure is a [`StoreError`] and stops deletions. A
/// stored record this build cannot read, such as a resource record of an
/// unknown version (a compact record's leading byte past 3, or JSON with
/// `"v"` other than 1), is an error ([`StoreError::Decode`]), never a
/// guess; records of the versions before are still read, and written in
/// the current one. Engine-specific: the memory engine holds typed values
/// and has no versions; the sled engine's refusal and migration are tested
/// in `sled.rs`.
pub trait Store: Send + Sync + 'static {
    /// A resource by id.
    fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError>;
    /// The outcome of an event id already handled.
    fn event(&self, event_id: &str) -> Result<Option<EventOutcome>, StoreError>;
    /// Resources due at or before `now`, earliest first, at most `limit`.
    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, String)>, StoreError>;
    /// Resources due at or before `now` whose entry comes strictly after
    /// `after` (the last entry a caller read), earliest first, at most
    /// `limit`: the tick reads a burst of deadlines in slices, so 100,000
    /// due at once are never held in memory together (issue 11).
    fn due_after(
        &self,
        after: (Timestamp, &str),
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError>;
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
    /// Counts for metrics. The sled engine keeps them as counters that
    /// every commit updates from the records it replaces (a read of one key
    /// at any size); the memory engine recounts (it is for tests).
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Calls `f` on every resource, in id order (forecast, sweeps).
    fn for_each_resource(&self, f: &mut dyn FnMut(Resource)) -> Result<(), StoreError>;
    /// At most `limit` resources with their due times, in id order, from
    /// the first id after `after` (from the start without one): a sweep
    /// reads the state in slices, letting requests in between (issue 11).
    fn resources_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Resource, Option<Timestamp>)>, StoreError>;
    /// The ids of a tenant's resources.
    fn tenant_resources(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Holds placed on a whole tenant.
    fn tenant_holds(&self, tenant: &str) -> Result<TenantHolds, StoreError>;
    /// The deletion certificate of a purged resource.
    fn certificate(&self, resource: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// A daemon-wide switch; false when never set.
    fn flag(&self, flag: Flag) -> Result<bool, StoreError>;
    /// The mass-deletion guard's held batch and last approval (default
    /// when never written).
    fn guard_state(&self) -> Result<crate::domain::guard::GuardState, StoreError>;
    /// Applies a write set atomically (visible at once, durable after flush).
    fn commit(&self, w: WriteSet) -> Result<(), StoreError>;
    /// Makes everything committed so far durable (fsync).
    fn flush(&self) -> Result<(), StoreError>;
    /// Deadline index entries strictly before `until`, after the entry
    /// `after` (as returned here or by [`Store::due`]), earliest first, at
    /// most `limit`: the forecast reads the index a page at a time.
    fn due_before(
        &self,
        until: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError>;
    /// Ids of the resources whose deletion the deadline index does not
    /// place (held and not yet deleting, or deleting), in id order, from
    /// the first id after `after`, at most `limit` (the forecast lists them
    /// whatever their entry).
    fn held_or_deleting(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Resources not yet settled, by product: the products a config must
    /// keep (read at start and reload instead of every record).
    fn products_in_use(&self) -> Result<BTreeMap<String, u64>, StoreError>;
    /// Deletion start times strictly after `since` (rounded up to the
    /// millisecond) that count for the mass-deletion guard (not approved
    /// by an operator), earliest first: the guard's windows after a
    /// restart.
    fn deletions_started_after(&self, since: Timestamp) -> Result<Vec<Timestamp>, StoreError>;
    /// Ids of the records that may lack what this build stores and an
    /// older one did not (an arrears grace end, a restriction limit): the
    /// ones start-up brings up to date, instead of reading every record.
    fn needing_migration(&self) -> Result<Vec<String>, StoreError>;
    /// Holds in force that `filter` admits, in [`HoldKey`] order, strictly
    /// after `after`, at most `limit`: `GET /v1/holds` a page at a time,
    /// from the index, never from every record.
    fn holds(&self, filter: &HoldFilter, after: Option<&HoldKey>, limit: usize) -> Result<Vec<HoldEntry>, StoreError>;
    /// Holds whose review date is at or before `now` and not yet reported,
    /// earliest first, at most `limit`: what the engine reports as due for
    /// review.
    fn reviews_due(&self, now: Timestamp, limit: usize) -> Result<Vec<(Timestamp, HoldKey)>, StoreError>;
    /// The earliest review date not yet reported strictly after `now`: one
    /// of the times the engine wakes at.
    fn next_review_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError>;
    /// Holds in force, and those reported due for review, for metrics (kept
    /// as counters by the sled engine, recounted by the memory one).
    fn hold_counts(&self) -> Result<HoldCounts, StoreError>;
    /// A subject's record (personal data, issue 12).
    fn subject(&self, key: &SubjectKey) -> Result<Option<crate::domain::privacy::Subject>, StoreError>;
    /// The ids of a tenant's subjects, in id order.
    fn tenant_subjects(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Subjects' deadline entries at or before `until`, strictly after
    /// `after`, earliest first, at most `limit`: the engine's tick and the
    /// forecast read them in slices.
    fn subjects_due(
        &self,
        after: Option<(Timestamp, &SubjectKey)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, SubjectKey)>, StoreError>;
    /// The earliest subject deadline strictly after `now`.
    fn next_subject_due_after(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError>;
    /// The subject a request belongs to (request ids are unique across
    /// the daemon).
    fn request_owner(&self, request_id: &str) -> Result<Option<SubjectKey>, StoreError>;
    /// Request ids with their subjects, in id order, strictly after
    /// `after`, at most `limit`.
    fn requests_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, SubjectKey)>, StoreError>;
    /// Every request not yet closed, in id order: few (each is a person's
    /// request waiting for an answer or its execution), read for metrics
    /// and the list of open requests.
    fn open_requests(&self) -> Result<Vec<OpenRequest>, StoreError>;
}
