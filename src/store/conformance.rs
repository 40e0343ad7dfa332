//! The [`Store`] contract, proven: one function per promise of the trait's
//! documentation, each given a fresh store, and [`conformance_suite!`]
//! turning them into `#[test]`s for one engine. Every engine is held to
//! the same suite by one line at the bottom of this file.

use super::{EventOutcome, Flag, MemoryStore, SledStore, Store, WriteSet};
use crate::audit::{AuditHead, AuditRecord};
use crate::domain::guard::{Deletion, GuardState, HeldBatch, WindowKind};
use crate::domain::lifecycle::{Resource, TenantHolds};
use crate::domain::vocabulary::Cause;
use crate::time::{parse_rfc3339, Timestamp};
use serde_json::json;

/// A store for one test, and what must live as long as it.
struct Fresh {
    store: Box<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

/// The sled engine, on a directory of its own.
fn fresh_sled() -> Fresh {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(&dir.path().join("db"), 1 << 20).expect("sled opens");
    Fresh { store: Box::new(store), _dir: Some(dir) }
}

/// The memory engine.
fn fresh_memory() -> Fresh {
    Fresh { store: Box::new(MemoryStore::new()), _dir: None }
}

/// `#[test]`s in a module named `$engine`, one per promise, each on a
/// store from `$fresh` (a function returning a [`Fresh`]).
macro_rules! conformance_suite {
    ($engine:ident, $fresh:path) => {
        conformance_suite!(@promises $engine, $fresh;
            a_fresh_store_is_empty,
            a_commit_is_readable_at_once,
            a_commit_is_seen_whole_or_not_at_all,
            the_due_index_follows_each_records_due,
            the_due_index_is_ordered_by_time_then_resource_id,
            due_times_are_held_to_the_millisecond,
            due_includes_now_and_stops_at_the_limit,
            due_after_an_entry_continues_in_index_order,
            next_due_after_is_strictly_after_now,
            resources_are_listed_once_in_id_order,
            slices_after_an_id_cover_every_resource_once,
            tenant_resources_lists_that_tenants_resources,
            tenant_holds_certificates_and_event_outcomes_read_back_by_key,
            the_outbox_is_trimmed_through_a_seq_and_read_after_one,
            a_large_commits_outbox_reads_back_whole_and_trims_at_any_seq,
            the_audit_head_follows_the_last_committed_record,
            the_manual_clock_reading_reads_back,
            the_guard_state_reads_back,
            flags_default_to_false_and_read_back_each,
            stats_count_states_copies_and_deadlines,
            stats_equal_a_recount_after_any_sequence_of_commits,
            due_before_pages_through_the_index_once,
            held_or_deleting_lists_held_and_deleting_resources,
            products_in_use_counts_unsettled_resources,
            deletions_started_after_lists_unapproved_starts,
            the_secondary_indexes_equal_a_recount_after_any_sequence_of_commits,
            needing_migration_lists_records_an_older_build_left_incomplete,
            holds_are_listed_in_key_order_by_tenant_and_authority,
            reviews_due_lists_unreported_review_dates_earliest_first,
            subjects_read_back_and_are_listed_by_tenant,
            the_subjects_due_index_follows_each_records_due,
            requests_are_indexed_and_open_ones_listed,
            subjects_erasure_starts_are_counted_with_the_deletion_starts,
        );
    };
    (@promises $engine:ident, $fresh:path; $($promise:ident),+ $(,)?) => {
        mod $engine {
            $(
                #[test]
                fn $promise() {
                    let fresh: super::Fresh = $fresh();
                    super::$promise(&*fresh.store);
                }
            )+
        }
    };
}

mod holds;
mod personal;
mod secondary;
use holds::*;
use personal::*;
use secondary::*;

conformance_suite!(sled, super::fresh_sled);
conformance_suite!(memory, super::fresh_memory);

// ---- Values to store ----

fn ts(s: &str) -> Timestamp {
    parse_rfc3339(s).expect("test time")
}

/// A resource with no copies, `active`.
fn resource(id: &str, tenant: &str) -> Resource {
    resource_with(id, tenant, "active", json!([]))
}

/// A resource in `state` with `copies` (JSON, defaults filled in by serde).
fn resource_with(id: &str, tenant: &str, state: &str, copies: serde_json::Value) -> Resource {
    serde_json::from_value(json!({
        "id": id, "tenant": tenant, "product": "p", "billing": "postpaid",
        "created_at": "2026-01-01T00:00:00Z", "holds": [], "released_holds": [],
        "state": state, "copies": copies, "history": [],
    }))
    .expect("test resource")
}

fn copy(name: &str, state: &str, stuck: bool, overdue: bool) -> serde_json::Value {
    json!({"store": name, "copy": name, "class": "backup", "state": state, "stuck": stuck,
           "restriction_overdue": overdue})
}

/// Audit records `from..=to`, chained.
fn audit_records(from: u64, to: u64) -> Vec<AuditRecord> {
    let mut prev = format!("prev-of-{from}");
    (from..=to)
        .map(|seq| {
            let r = AuditRecord::seal(seq, ts("2026-01-01T00:00:00Z"), "test.step", None, None, json!({}), &prev);
            prev = r.hash.clone();
            r
        })
        .collect()
}

fn seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn put(store: &dyn Store, r: Resource, due: Option<&str>) {
    let mut w = WriteSet::default();
    w.put_resource(r, due.map(ts));
    store.commit(w).expect("commit");
}

fn all_due(store: &dyn Store) -> Vec<(Timestamp, String)> {
    store.due(ts("9999-01-01T00:00:00Z"), usize::MAX).expect("due")
}

fn entry(t: &str, id: &str) -> (Timestamp, String) {
    (ts(t), id.to_string())
}

fn held_batch() -> GuardState {
    GuardState {
        held: Some(HeldBatch {
            resources: vec!["r1".into(), "r2".into()],
            deadlines: vec![ts("2026-02-01T00:00:00Z"), ts("2026-02-02T00:00:00Z")],
            buffers: vec![
                (Some(Cause::Expiry), ts("2026-01-17T00:00:00Z")),
                (Some(Cause::Release), ts("2026-02-02T00:00:00Z")),
            ],
            digest: crate::domain::guard::batch_digest(&["r1".into(), "r2".into()]),
            tripped_at: ts("2026-02-03T00:00:00Z"),
            window: WindowKind::Short,
            started_in_window: 7,
        }),
        approved: vec![(
            "r0".into(),
            Deletion {
                delete_after: ts("2026-01-31T00:00:00Z"),
                cause: Some(Cause::Arrears),
                started_at: ts("2026-01-16T00:00:00Z"),
            },
        )],
    }
}

fn tenant_holds() -> TenantHolds {
    serde_json::from_value(json!({
        "holds": [{"hold_id": "h1", "authority": "court", "reason": "case 1", "tenant_wide": true,
                   "placed_at": "2026-01-02T00:00:00Z"}],
        "released": [["h0", "2026-01-01T00:00:00Z"]],
    }))
    .expect("test holds")
}

// ---- The promises ----

/// Never written: every read is empty or its default.
fn a_fresh_store_is_empty(store: &dyn Store) {
    assert_eq!(store.resource("r1").unwrap(), None);
    assert_eq!(store.event("e1").unwrap(), None);
    assert_eq!(all_due(store), vec![]);
    assert_eq!(store.next_due_after(ts("1900-01-01T00:00:00Z")).unwrap(), None);
    assert_eq!(store.audit_head().unwrap(), AuditHead::genesis());
    assert_eq!(store.outbox_after(0).unwrap(), vec![]);
    assert_eq!(store.clock().unwrap(), None);
    assert_eq!(store.resource_count().unwrap(), 0);
    assert_eq!(store.stats().unwrap(), super::StoreStats::default());
    let mut visited = 0;
    store.for_each_resource(&mut |_| visited += 1).unwrap();
    visited += store.resources_after(None, usize::MAX).unwrap().len();
    assert_eq!(visited, 0);
    assert_eq!(store.tenant_resources("t1").unwrap(), Vec::<String>::new());
    assert_eq!(store.tenant_holds("t1").unwrap(), TenantHolds::default());
    assert_eq!(store.certificate("r1").unwrap(), None);
    assert_eq!(store.guard_state().unwrap(), GuardState::default());
    assert_eq!(store.holds(&Default::default(), None, usize::MAX).unwrap(), []);
    assert_eq!(store.reviews_due(ts("9999-01-01T00:00:00Z"), usize::MAX).unwrap(), []);
    assert_eq!(store.next_review_after(ts("1900-01-01T00:00:00Z")).unwrap(), None);
    assert_eq!(store.hold_counts().unwrap(), Default::default());
    for flag in Flag::ALL {
        assert!(!store.flag(flag).unwrap(), "{flag:?}");
    }
    store.flush().unwrap();
}

/// One write set touching every part; when commit returns, every part
/// reads back.
fn a_commit_is_readable_at_once(store: &dyn Store) {
    let r = resource("r1", "t1");
    let outcome = EventOutcome { status: "applied".into(), resource: Some("r1".into()) };
    let cert = json!({"resource": "r1", "copies": [{"store": "db", "seq": 2}]});
    let audit = audit_records(1, 2);
    let mut w = WriteSet {
        tenants: vec![("t1".into(), tenant_holds())],
        events: vec![("e1".into(), outcome.clone())],
        audit: audit.clone(),
        clock: Some(ts("2026-03-01T12:00:00Z")),
        flags: vec![(Flag::Paused, true)],
        certificates: vec![("r1".into(), cert.clone())],
        guard: Some(held_batch()),
        ..Default::default()
    };
    w.put_resource(r.clone(), Some(ts("2026-04-01T00:00:00Z")));
    store.commit(w).unwrap();

    assert_eq!(store.resource("r1").unwrap(), Some(r));
    assert_eq!(all_due(store), vec![entry("2026-04-01T00:00:00Z", "r1")]);
    assert_eq!(store.tenant_resources("t1").unwrap(), vec!["r1".to_string()]);
    assert_eq!(store.tenant_holds("t1").unwrap(), tenant_holds());
    assert_eq!(store.event("e1").unwrap(), Some(outcome));
    assert_eq!(store.outbox_after(0).unwrap(), audit);
    assert_eq!(store.audit_head().unwrap(), AuditHead { seq: 2, hash: audit[1].hash.clone() });
    assert_eq!(store.clock().unwrap(), Some(ts("2026-03-01T12:00:00Z")));
    assert!(store.flag(Flag::Paused).unwrap());
    assert_eq!(store.certificate("r1").unwrap(), Some(cert));
    assert_eq!(store.guard_state().unwrap(), held_batch());
    assert_eq!(store.resource_count().unwrap(), 1);
}

/// A reader on another thread never sees part of a write set: each set
/// writes a resource, an event and a certificate together; the reader
/// watches the next few sets, reading their parts in one order or the
/// reverse (a part seen implies the parts read after it).
fn a_commit_is_seen_whole_or_not_at_all(store: &dyn Store) {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    const SETS: usize = 1000;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..SETS {
                let id = format!("r{i}");
                let mut w = WriteSet {
                    events: vec![(
                        format!("e{i}"),
                        EventOutcome { status: "applied".into(), resource: Some(id.clone()) },
                    )],
                    certificates: vec![(id.clone(), json!({"n": i}))],
                    ..Default::default()
                };
                w.put_resource(resource(&id, "t1"), Some(ts("2026-01-01T00:00:00Z")));
                store.commit(w).unwrap();
            }
            done.store(true, SeqCst);
        });
        // Whether set `i` is visible; panics on a part of it.
        let seen = |i: usize, event_first: bool| {
            let id = format!("r{i}");
            let event = || store.event(&format!("e{i}")).unwrap().is_some();
            let certificate = || store.certificate(&id).unwrap().is_some();
            let resource = || store.resource(&id).unwrap().is_some();
            let parts: [(&str, &dyn Fn() -> bool); 3] = if event_first {
                [("event", &event), ("certificate", &certificate), ("resource", &resource)]
            } else {
                [("resource", &resource), ("certificate", &certificate), ("event", &event)]
            };
            let first = parts[0].1();
            let second = parts[1].1();
            assert!(!first || second, "set {i}: {} seen, then no {}", parts[0].0, parts[1].0);
            assert!(!second || parts[2].1(), "set {i}: {} seen, then no {}", parts[1].0, parts[2].0);
            first
        };
        let (mut next, mut pass) = (0, 0u64);
        while next < SETS {
            let finished = done.load(SeqCst);
            pass += 1;
            let mut all_before = true;
            let window = next..(next + 4).min(SETS);
            for i in window {
                let whole = seen(i, pass % 2 == 0);
                assert!(whole || !finished, "the writer finished but set {i} is not visible");
                if whole && all_before {
                    next = i + 1;
                } else {
                    all_before = false;
                }
            }
        }
    });
}

/// The index holds each resource's current `due` only: a rewrite moves the
/// entry, `None` removes it, and a later `Some` brings it back.
fn the_due_index_follows_each_records_due(store: &dyn Store) {
    put(store, resource("r1", "t1"), Some("2026-01-10T00:00:00Z"));
    put(store, resource("r2", "t1"), Some("2026-01-20T00:00:00Z"));
    put(store, resource("r1", "t1"), Some("2026-01-30T00:00:00Z"));
    assert_eq!(all_due(store), vec![entry("2026-01-20T00:00:00Z", "r2"), entry("2026-01-30T00:00:00Z", "r1")]);
    assert_eq!(store.next_due_after(ts("2026-01-01T00:00:00Z")).unwrap(), Some(ts("2026-01-20T00:00:00Z")));

    put(store, resource("r2", "t1"), None);
    assert_eq!(all_due(store), vec![entry("2026-01-30T00:00:00Z", "r1")]);
    assert_eq!(store.next_due_after(ts("2026-01-01T00:00:00Z")).unwrap(), Some(ts("2026-01-30T00:00:00Z")));
    assert!(store.resource("r2").unwrap().is_some(), "a resource without a deadline is still kept");
    assert_eq!(store.stats().unwrap().pending_deadlines, 1);

    put(store, resource("r2", "t1"), Some("2026-01-05T00:00:00Z"));
    assert_eq!(all_due(store), vec![entry("2026-01-05T00:00:00Z", "r2"), entry("2026-01-30T00:00:00Z", "r1")]);

    let mut dues = Vec::new();
    dues.extend(store.resources_after(None, usize::MAX).unwrap().into_iter().map(|(r, due)| (r.id, due)));
    assert_eq!(
        dues,
        vec![("r1".into(), Some(ts("2026-01-30T00:00:00Z"))), ("r2".into(), Some(ts("2026-01-05T00:00:00Z")))]
    );

    put(store, resource("r1", "t1"), None);
    put(store, resource("r2", "t1"), None);
    assert_eq!(all_due(store), vec![]);
    assert_eq!(store.next_due_after(ts("1900-01-01T00:00:00Z")).unwrap(), None);
}

/// Earliest first across 1970 (negative millis sort before positive ones),
/// and resources due at the same instant by id, whatever the write order.
fn the_due_index_is_ordered_by_time_then_resource_id(store: &dyn Store) {
    let writes = [
        ("b", "2026-01-01T00:00:00Z"),
        ("z", "1970-01-01T00:00:00Z"),
        ("c", "1969-07-20T20:17:40Z"),
        ("a", "2026-01-01T00:00:00Z"),
        ("y", "1969-12-31T23:59:59.999Z"),
        ("x", "1970-01-01T00:00:00.001Z"),
        ("m", "2000-01-01T00:00:00Z"),
    ];
    for (id, due) in writes {
        put(store, resource(id, "t1"), Some(due));
    }
    assert_eq!(
        all_due(store),
        vec![
            entry("1969-07-20T20:17:40Z", "c"),
            entry("1969-12-31T23:59:59.999Z", "y"),
            entry("1970-01-01T00:00:00Z", "z"),
            entry("1970-01-01T00:00:00.001Z", "x"),
            entry("2000-01-01T00:00:00Z", "m"),
            entry("2026-01-01T00:00:00Z", "a"),
            entry("2026-01-01T00:00:00Z", "b"),
        ]
    );
    assert_eq!(store.next_due_after(ts("1969-01-01T00:00:00Z")).unwrap(), Some(ts("1969-07-20T20:17:40Z")));
    assert_eq!(store.next_due_after(ts("1969-07-20T20:17:40Z")).unwrap(), Some(ts("1969-12-31T23:59:59.999Z")));
    assert_eq!(store.next_due_after(ts("1969-12-31T23:59:59.999Z")).unwrap(), Some(ts("1970-01-01T00:00:00Z")));
}

/// Sub-millisecond digits of a due time are dropped (rounded down, also
/// before 1970); the record itself keeps the time as given.
fn due_times_are_held_to_the_millisecond(store: &dyn Store) {
    put(store, resource("r1", "t1"), Some("2026-01-01T00:00:00.123456789Z"));
    put(store, resource("r2", "t1"), Some("1969-12-31T23:59:59.000500Z"));
    assert_eq!(all_due(store), vec![entry("1969-12-31T23:59:59Z", "r2"), entry("2026-01-01T00:00:00.123Z", "r1")]);
    // An entry rounded down to `now`'s millisecond is not after `now`.
    assert_eq!(store.next_due_after(ts("2026-01-01T00:00:00.1231Z")).unwrap(), None);
    assert_eq!(store.next_due_after(ts("2026-01-01T00:00:00.1229Z")).unwrap(), Some(ts("2026-01-01T00:00:00.123Z")));
    assert_eq!(store.due(ts("2026-01-01T00:00:00.123Z"), 10).unwrap().len(), 2);
    let mut dues = Vec::new();
    dues.extend(store.resources_after(None, usize::MAX).unwrap().into_iter().map(|(_, due)| due));
    assert_eq!(dues, vec![Some(ts("2026-01-01T00:00:00.123456789Z")), Some(ts("1969-12-31T23:59:59.000500Z"))]);
}

/// `due(now, limit)`: entries at or before `now`, an entry exactly at
/// `now` included, earliest first, no more than `limit`.
fn due_includes_now_and_stops_at_the_limit(store: &dyn Store) {
    put(store, resource("r3", "t1"), Some("2026-01-03T00:00:00Z"));
    put(store, resource("r1", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("r2", "t1"), Some("2026-01-02T00:00:00Z"));
    let due = |now: &str, limit| store.due(ts(now), limit).unwrap();
    assert_eq!(due("2025-12-31T23:59:59.999Z", 10), vec![]);
    assert_eq!(due("2026-01-01T00:00:00Z", 10), vec![entry("2026-01-01T00:00:00Z", "r1")]);
    assert_eq!(
        due("2026-01-02T00:00:00Z", 10),
        vec![entry("2026-01-01T00:00:00Z", "r1"), entry("2026-01-02T00:00:00Z", "r2")]
    );
    assert_eq!(due("2026-01-01T23:59:59.999Z", 10), vec![entry("2026-01-01T00:00:00Z", "r1")]);
    assert_eq!(
        due("2027-01-01T00:00:00Z", 2),
        vec![entry("2026-01-01T00:00:00Z", "r1"), entry("2026-01-02T00:00:00Z", "r2")]
    );
    assert_eq!(due("2027-01-01T00:00:00Z", 0), vec![]);
    assert_eq!(due("2027-01-01T00:00:00Z", 3).len(), 3);
}

/// `due_after(entry, now, limit)`: the entries of `due(now, ..)` strictly
/// after `entry` in index order (time, then id), so slices read one after
/// another list every entry once; an entry exactly at `now` is included.
fn due_after_an_entry_continues_in_index_order(store: &dyn Store) {
    put(store, resource("b", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("a", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("c", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("z", "t1"), Some("2026-01-02T00:00:00Z"));
    put(store, resource("y", "t1"), Some("2026-01-03T00:00:00Z"));
    let day1 = ts("2026-01-01T00:00:00Z");
    let after = |t: &str, id: &str, now: &str, limit| store.due_after((ts(t), id), ts(now), limit).unwrap();
    // Same time, later ids; then later times, whatever their ids.
    assert_eq!(
        after("2026-01-01T00:00:00Z", "a", "2026-01-02T00:00:00Z", 10),
        vec![
            entry("2026-01-01T00:00:00Z", "b"),
            entry("2026-01-01T00:00:00Z", "c"),
            entry("2026-01-02T00:00:00Z", "z")
        ]
    );
    // An entry that is not in the index is a position all the same.
    assert_eq!(
        after("2026-01-01T00:00:00Z", "bb", "2026-01-01T00:00:00Z", 10),
        vec![entry("2026-01-01T00:00:00Z", "c")]
    );
    // The last entry: nothing after it.
    assert_eq!(after("2026-01-03T00:00:00Z", "y", "2027-01-01T00:00:00Z", 10), vec![]);
    // Slices of two, each after the last one read, cover `due` exactly once.
    let now = ts("2026-01-02T00:00:00Z");
    let mut read: Vec<(crate::time::Timestamp, String)> = store.due(now, 2).unwrap();
    loop {
        let (t, id) = read.last().cloned().unwrap();
        let next = store.due_after((t, &id), now, 2).unwrap();
        if next.is_empty() {
            break;
        }
        read.extend(next);
    }
    assert_eq!(read, store.due(now, usize::MAX).unwrap());
    assert_eq!(read.len(), 4);
    assert_eq!(read[0], (day1, "a".to_string()));
    // The limit holds.
    assert_eq!(after("2025-01-01T00:00:00Z", "", "2027-01-01T00:00:00Z", 1), vec![entry("2026-01-01T00:00:00Z", "a")]);
}

/// `next_due_after(now)`: the earliest entry strictly after `now`; an entry
/// exactly at `now` is not after it.
fn next_due_after_is_strictly_after_now(store: &dyn Store) {
    put(store, resource("r2", "t1"), Some("2026-01-02T00:00:00Z"));
    put(store, resource("r1", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("r0", "t1"), Some("1969-12-31T23:59:59Z"));
    let next = |now: &str| store.next_due_after(ts(now)).unwrap();
    assert_eq!(next("1969-12-31T23:59:58Z"), Some(ts("1969-12-31T23:59:59Z")));
    assert_eq!(next("1969-12-31T23:59:59Z"), Some(ts("2026-01-01T00:00:00Z")));
    assert_eq!(next("2025-12-31T23:59:59.999Z"), Some(ts("2026-01-01T00:00:00Z")));
    assert_eq!(next("2026-01-01T00:00:00Z"), Some(ts("2026-01-02T00:00:00Z")));
    assert_eq!(next("2026-01-01T00:00:00.001Z"), Some(ts("2026-01-02T00:00:00Z")));
    assert_eq!(next("2026-01-02T00:00:00Z"), None);
}

/// Resources read back as last written and are visited once each, in id
/// order, with their index entry; the count follows.
fn resources_are_listed_once_in_id_order(store: &dyn Store) {
    put(store, resource("r2", "t1"), None);
    put(store, resource("r10", "t2"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("r1", "t1"), None);
    let mut r2 = resource("r2", "t1");
    r2.product = "q".into();
    put(store, r2.clone(), Some("2026-02-01T00:00:00Z"));
    assert_eq!(store.resource("r2").unwrap(), Some(r2));
    assert_eq!(store.resource("r3").unwrap(), None);
    assert_eq!(store.resource_count().unwrap(), 3);
    let mut ids = Vec::new();
    store.for_each_resource(&mut |r| ids.push((r.id, r.product))).unwrap();
    assert_eq!(ids, vec![("r1".into(), "p".into()), ("r10".into(), "p".into()), ("r2".into(), "q".into())]);
    let mut dues = Vec::new();
    dues.extend(store.resources_after(None, usize::MAX).unwrap().into_iter().map(|(r, due)| (r.id, due)));
    assert_eq!(
        dues,
        vec![
            ("r1".into(), None),
            ("r10".into(), Some(ts("2026-01-01T00:00:00Z"))),
            ("r2".into(), Some(ts("2026-02-01T00:00:00Z")))
        ]
    );
}

/// A tenant's resources, in id order, each once however often rewritten,
/// and none of another tenant's (not even one whose id starts the same).
fn tenant_resources_lists_that_tenants_resources(store: &dyn Store) {
    put(store, resource("r2", "t1"), None);
    put(store, resource("r1", "t1"), Some("2026-01-01T00:00:00Z"));
    put(store, resource("r3", "t10"), None);
    put(store, resource("r4", "t"), None);
    put(store, resource("r1", "t1"), Some("2026-01-02T00:00:00Z"));
    assert_eq!(store.tenant_resources("t1").unwrap(), vec!["r1".to_string(), "r2".to_string()]);
    assert_eq!(store.tenant_resources("t10").unwrap(), vec!["r3".to_string()]);
    assert_eq!(store.tenant_resources("t").unwrap(), vec!["r4".to_string()]);
    assert_eq!(store.tenant_resources("t2").unwrap(), Vec::<String>::new());
}

/// Tenant holds, certificates and event outcomes: by key, as last written;
/// other keys unaffected.
fn tenant_holds_certificates_and_event_outcomes_read_back_by_key(store: &dyn Store) {
    let applied = EventOutcome { status: "applied".into(), resource: Some("r1".into()) };
    let rejected = EventOutcome { status: "rejected".into(), resource: None };
    store
        .commit(WriteSet {
            tenants: vec![("t1".into(), tenant_holds())],
            certificates: vec![("r1".into(), json!({"v": 1}))],
            events: vec![("e1".into(), applied.clone()), ("e2".into(), rejected.clone())],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.tenant_holds("t1").unwrap(), tenant_holds());
    assert_eq!(store.tenant_holds("t2").unwrap(), TenantHolds::default());
    assert_eq!(store.certificate("r1").unwrap(), Some(json!({"v": 1})));
    assert_eq!(store.certificate("r2").unwrap(), None);
    assert_eq!(store.event("e1").unwrap(), Some(applied.clone()));
    assert_eq!(store.event("e2").unwrap(), Some(rejected));
    assert_eq!(store.event("e3").unwrap(), None);

    let released = TenantHolds { holds: vec![], released: vec![("h1".into(), ts("2026-01-03T00:00:00Z"))] };
    store
        .commit(WriteSet {
            tenants: vec![("t1".into(), released.clone())],
            certificates: vec![("r1".into(), json!({"v": 2}))],
            events: vec![("e2".into(), applied.clone())],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.tenant_holds("t1").unwrap(), released);
    assert_eq!(store.certificate("r1").unwrap(), Some(json!({"v": 2})));
    assert_eq!(store.event("e2").unwrap(), Some(applied));
}

/// `outbox_after(seq)` lists later records in seq order; trimming through a
/// seq removes the records up to and including it, and no later one.
fn the_outbox_is_trimmed_through_a_seq_and_read_after_one(store: &dyn Store) {
    store.commit(WriteSet { audit: audit_records(1, 3), ..Default::default() }).unwrap();
    store.commit(WriteSet { audit: audit_records(4, 5), ..Default::default() }).unwrap();
    assert_eq!(seqs(&store.outbox_after(0).unwrap()), vec![1, 2, 3, 4, 5]);
    assert_eq!(store.outbox_after(0).unwrap()[..3], audit_records(1, 3)[..]);
    assert_eq!(seqs(&store.outbox_after(3).unwrap()), vec![4, 5]);
    assert_eq!(seqs(&store.outbox_after(5).unwrap()), Vec::<u64>::new());

    store.commit(WriteSet { outbox_done_through: Some(2), ..Default::default() }).unwrap();
    assert_eq!(seqs(&store.outbox_after(0).unwrap()), vec![3, 4, 5]);
    assert_eq!(seqs(&store.outbox_after(3).unwrap()), vec![4, 5]);
    store.commit(WriteSet { outbox_done_through: Some(4), ..Default::default() }).unwrap();
    assert_eq!(seqs(&store.outbox_after(0).unwrap()), vec![5]);
    store.commit(WriteSet { outbox_done_through: Some(9), ..Default::default() }).unwrap();
    assert_eq!(seqs(&store.outbox_after(0).unwrap()), Vec::<u64>::new());
}

/// A commit of thousands of records (a batched ingest: an engine may store
/// them in chunks) reads back record for record, from any seq, and a trim
/// through any seq (mid-chunk too) leaves exactly the later ones.
fn a_large_commits_outbox_reads_back_whole_and_trims_at_any_seq(store: &dyn Store) {
    let mut records = Vec::new();
    let mut prev = "genesis".to_string();
    for seq in 1..=2000u64 {
        let data = json!({"event_id": format!("event-{seq:06}"), "type": "resource.created", "note": "x".repeat(seq as usize % 97)});
        let r =
            AuditRecord::seal(seq, ts("2026-01-01T00:00:00Z"), "event.applied", Some("t1"), Some("r1"), data, &prev);
        prev = r.hash.clone();
        records.push(r);
    }
    store.commit(WriteSet { audit: records.clone(), ..Default::default() }).unwrap();
    assert_eq!(store.outbox_after(0).unwrap(), records);
    for after in [1u64, 2, 150, 999, 1999] {
        assert_eq!(store.outbox_after(after).unwrap(), records[after as usize..], "after {after}");
    }
    for done in [1u64, 37, 38, 777, 1500, 1999] {
        store.commit(WriteSet { outbox_done_through: Some(done), ..Default::default() }).unwrap();
        assert_eq!(store.outbox_after(0).unwrap(), records[done as usize..], "trimmed through {done}");
        assert_eq!(store.outbox_after(done + 1).unwrap(), records[done as usize + 1..], "after {}", done + 1);
    }
    let next = audit_records(2001, 2002);
    store.commit(WriteSet { audit: next.clone(), ..Default::default() }).unwrap();
    assert_eq!(seqs(&store.outbox_after(0).unwrap()), vec![2000, 2001, 2002]);
    store.commit(WriteSet { outbox_done_through: Some(2002), ..Default::default() }).unwrap();
    assert_eq!(store.outbox_after(0).unwrap(), vec![]);
}

/// The head is the last committed record's seq and hash, and stays when a
/// write set has no audit record or only trims the outbox.
fn the_audit_head_follows_the_last_committed_record(store: &dyn Store) {
    let first = audit_records(1, 2);
    store.commit(WriteSet { audit: first.clone(), ..Default::default() }).unwrap();
    assert_eq!(store.audit_head().unwrap(), AuditHead { seq: 2, hash: first[1].hash.clone() });
    store.commit(WriteSet { clock: Some(ts("2026-01-01T00:00:00Z")), ..Default::default() }).unwrap();
    store.commit(WriteSet { outbox_done_through: Some(2), ..Default::default() }).unwrap();
    assert_eq!(store.audit_head().unwrap(), AuditHead { seq: 2, hash: first[1].hash.clone() });
    let next = audit_records(3, 3);
    store.commit(WriteSet { audit: next.clone(), ..Default::default() }).unwrap();
    assert_eq!(store.audit_head().unwrap(), AuditHead { seq: 3, hash: next[0].hash.clone() });
}

/// The manual clock reads back as last written, to the nanosecond, before
/// 1970 too, and a write set without a reading leaves it.
fn the_manual_clock_reading_reads_back(store: &dyn Store) {
    store.commit(WriteSet { clock: Some(ts("2026-05-01T10:20:30.123456789Z")), ..Default::default() }).unwrap();
    assert_eq!(store.clock().unwrap(), Some(ts("2026-05-01T10:20:30.123456789Z")));
    store.commit(WriteSet { flags: vec![(Flag::Paused, true)], ..Default::default() }).unwrap();
    assert_eq!(store.clock().unwrap(), Some(ts("2026-05-01T10:20:30.123456789Z")));
    store.commit(WriteSet { clock: Some(ts("1969-06-01T00:00:00Z")), ..Default::default() }).unwrap();
    assert_eq!(store.clock().unwrap(), Some(ts("1969-06-01T00:00:00Z")));
}

/// The guard state (held batch and approved starts) reads back as last
/// written; a write set without one leaves it; writing the default clears
/// it.
fn the_guard_state_reads_back(store: &dyn Store) {
    store.commit(WriteSet { guard: Some(held_batch()), ..Default::default() }).unwrap();
    assert_eq!(store.guard_state().unwrap(), held_batch());
    store.commit(WriteSet { flags: vec![(Flag::GuardTripped, true)], ..Default::default() }).unwrap();
    assert_eq!(store.guard_state().unwrap(), held_batch());
    store.commit(WriteSet { guard: Some(GuardState::default()), ..Default::default() }).unwrap();
    assert_eq!(store.guard_state().unwrap(), GuardState::default());
}

/// Each switch is false until set, reads back as last set, and setting one
/// leaves the others.
fn flags_default_to_false_and_read_back_each(store: &dyn Store) {
    for flag in Flag::ALL {
        store.commit(WriteSet { flags: vec![(flag, true)], ..Default::default() }).unwrap();
        for other in Flag::ALL {
            assert_eq!(store.flag(other).unwrap(), other <= flag, "{other:?} after setting {flag:?}");
        }
    }
    store.commit(WriteSet { flags: vec![(Flag::ClockAnomaly, false)], ..Default::default() }).unwrap();
    assert!(store.flag(Flag::Paused).unwrap());
    assert!(!store.flag(Flag::ClockAnomaly).unwrap());
    assert!(store.flag(Flag::GuardTripped).unwrap());
}

/// Resources by state, stuck copies, restricted copies, overdue restricted
/// copies (restricted or restricting only), index entries, and the
/// earliest entry even when it is past.
fn stats_count_states_copies_and_deadlines(store: &dyn Store) {
    put(store, resource("a1", "t1"), Some("2020-01-01T00:00:00Z"));
    put(store, resource("a2", "t1"), None);
    let deleted = json!([
        copy("s1", "restricted", false, true),
        copy("s2", "restricted", true, false),
        copy("s3", "restricting", false, true),
        copy("s4", "deleted", false, true),
        copy("s5", "deleting", true, false),
    ]);
    put(store, resource_with("d1", "t1", "deleted", deleted), Some("2026-01-01T00:00:00Z"));
    put(store, resource_with("p1", "t2", "purged", json!([])), None);
    let st = store.stats().unwrap();
    let states: Vec<(&str, u64)> = st.resources.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(states, vec![("active", 2), ("deleted", 1), ("purged", 1)]);
    assert_eq!(st.copies_stuck, 2);
    assert_eq!(st.copies_restricted, 2);
    assert_eq!(st.copies_restriction_overdue, 2);
    assert_eq!(st.pending_deadlines, 2);
    assert_eq!(st.next_deadline, Some(ts("2020-01-01T00:00:00Z")));
}

/// What [`Store::stats`] must equal: every resource and index entry
/// counted one by one.
pub(super) fn recount(store: &dyn Store) -> crate::store::StoreStats {
    let mut st = crate::store::StoreStats::default();
    store.for_each_resource(&mut |r| st.count_resource(&r)).expect("resources");
    let due = all_due(store);
    st.pending_deadlines = due.len() as u64;
    st.next_deadline = due.first().map(|(t, _)| *t);
    st
}

/// A resource in a pseudo-random state with 0 to 3 pseudo-random copies,
/// and a due time or none, drawn from `next`.
pub(super) fn random_resource(id: &str, next: &mut impl FnMut(u64) -> u64) -> (Resource, Option<Timestamp>) {
    const STATES: [&str; 5] = ["active", "retained", "deleting", "deleted", "purged"];
    const COPY_STATES: [&str; 6] = ["present", "deleting", "restricting", "restricted", "purging", "deleted"];
    let copies: Vec<serde_json::Value> = (0..next(4))
        .map(|i| copy(&format!("s{i}"), COPY_STATES[next(6) as usize], next(2) == 1, next(2) == 1))
        .collect();
    let r = resource_with(id, &format!("t{}", next(3)), STATES[next(5) as usize], json!(copies));
    let due = (next(3) > 0).then(|| ts("2026-01-01T00:00:00Z") + chrono::Duration::hours(next(10_000) as i64 - 5_000));
    (r, due)
}

/// The counters behind `stats` (kept by commits, not recounted, in an
/// engine that stores them) equal a recount after any mix of creations,
/// rewrites and index changes, one resource or several per commit.
fn stats_equal_a_recount_after_any_sequence_of_commits(store: &dyn Store) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..300 {
        let mut w = WriteSet::default();
        for _ in 0..=next(3) {
            let (r, due) = random_resource(&format!("r{}", next(40)), &mut next);
            w.put_resource(r, due);
        }
        if next(4) == 0 {
            w.flags.push((Flag::Paused, next(2) == 1));
        }
        store.commit(w).expect("commit");
        if step % 50 == 49 {
            assert_eq!(store.stats().unwrap(), recount(store), "after {} commits", step + 1);
        }
    }
    assert_eq!(store.stats().unwrap(), recount(store));
    assert_eq!(store.resource_count().unwrap(), recount(store).resources.values().sum::<u64>());
}

/// Slices read one after another (each after the last id of the one
/// before) give every resource once, in id order, with its due time; an id
/// that is not stored (removed meanwhile) still marks where to go on.
fn slices_after_an_id_cover_every_resource_once(store: &dyn Store) {
    for (i, id) in ["b", "a", "e", "c", "d"].iter().enumerate() {
        let due = (i % 2 == 0).then_some("2026-03-01T00:00:00Z");
        put(store, resource(id, "t1"), due);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let slice = store.resources_after(after.as_deref(), 2).unwrap();
        assert!(slice.len() <= 2, "a slice holds at most the limit");
        seen.extend(slice.iter().map(|(r, due)| (r.id.clone(), due.is_some())));
        match slice.last() {
            Some((r, _)) => after = Some(r.id.clone()),
            None => break,
        }
    }
    let want: Vec<(String, bool)> = [("a", false), ("b", true), ("c", false), ("d", true), ("e", true)]
        .iter()
        .map(|(id, d)| (id.to_string(), *d))
        .collect();
    assert_eq!(seen, want);
    let from_gap: Vec<String> = store.resources_after(Some("bb"), 10).unwrap().into_iter().map(|(r, _)| r.id).collect();
    assert_eq!(from_gap, ["c", "d", "e"]);
}
