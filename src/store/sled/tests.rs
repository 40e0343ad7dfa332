//! The sled engine's own promises, beyond the shared suite
//! (`store::conformance`): durability across a reopen, the lock, and
//! refusing records it cannot read.

use super::*;
use crate::store::{EventOutcome, Flag};
use crate::time::parse_rfc3339;

/// Opens the database under `dir`. Right after a `drop`, sled's flusher
/// thread may still hold the file lock for a moment (seen on a loaded
/// machine): a reopen waits for it, up to a few seconds, as a restarted
/// daemon would find it released.
fn open(dir: &tempfile::TempDir) -> SledStore {
    let mut tries = 0;
    loop {
        match SledStore::open(&dir.path().join("db"), 1 << 20) {
            Err(e) if tries < 200 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("sled opens"),
        }
    }
}

fn resource(id: &str) -> Resource {
    serde_json::from_value(serde_json::json!({
        "id": id, "tenant": "t1", "product": "p", "billing": "postpaid",
        "created_at": "2026-01-01T00:00:00Z", "holds": [], "released_holds": [],
        "state": "active", "copies": [], "history": [],
    }))
    .expect("test resource")
}

fn ts(s: &str) -> Timestamp {
    parse_rfc3339(s).expect("test time")
}

/// Issue 11: the counters behind `stats` are stored with the records
/// they count, so after a reopen they still equal a recount, and a
/// database written before they existed (no `m/stats` key) is recounted
/// once, at open.
#[test]
fn counters_survive_a_reopen_and_are_rebuilt_where_missing() {
    use crate::store::conformance::{random_resource, recount};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..200 {
        let mut w = WriteSet::default();
        let (r, due) = random_resource(&format!("r{}", i % 60), &mut next);
        w.put_resource(r, due);
        store.commit(w).unwrap();
    }
    store.flush().unwrap();
    let want = recount(&store);
    assert_eq!(store.stats().unwrap(), want);
    drop(store);

    let store = open(&dir);
    assert_eq!(store.stats().unwrap(), want, "the stored counters, read back");
    store.db.remove(record::STATS_KEY).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open(&dir);
    assert!(store.db.get(record::STATS_KEY).unwrap().is_some(), "recounted and stored at open");
    assert_eq!(store.stats().unwrap(), want, "an older database's counters are recounted");
}

/// Issue 11: a database written before the secondary indexes existed
/// (no `m/indexes` marker, no `h/`, `s/` or `m/products` keys) has them
/// built from its records once, at open; after that they are read back.
#[test]
fn secondary_indexes_are_built_once_for_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut deleting = resource("r2");
    deleting.state = crate::domain::lifecycle::State::Deleting;
    deleting.deletion_started_at = Some(ts("2026-03-01T00:00:00Z"));
    let mut w = WriteSet::default();
    w.put_resource(resource("r1"), Some(ts("2026-03-01T00:00:00Z")));
    w.put_resource(deleting, None);
    store.commit(w).unwrap();
    let want = (
        store.held_or_deleting(None, 10).unwrap(),
        store.products_in_use().unwrap(),
        store.deletions_started_after(ts("2026-01-01T00:00:00Z")).unwrap(),
    );
    assert_eq!(want.0, ["r2"]);
    assert_eq!(want.1.get("p"), Some(&2));
    // As an older build left it.
    for prefix in [&b"h/"[..], b"s/"] {
        for k in store.db.scan_prefix(prefix).keys() {
            store.db.remove(k.unwrap()).unwrap();
        }
    }
    store.db.remove(indexes::INDEXES_KEY).unwrap();
    store.db.remove(indexes::PRODUCTS_KEY).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open(&dir);
    let got = (
        store.held_or_deleting(None, 10).unwrap(),
        store.products_in_use().unwrap(),
        store.deletions_started_after(ts("2026-01-01T00:00:00Z")).unwrap(),
    );
    assert_eq!(got, want);
    assert!(store.db.get(indexes::INDEXES_KEY).unwrap().is_some(), "built once: the marker is stored");
}

/// Issue 13: a database whose indexes an older build kept (marker 1,
/// no index of holds) has its holds indexed at open, from the
/// resources' own holds and the tenants' records: placed before the
/// upgrade, they are listed, counted and their review dates wake the
/// engine like any other.
#[test]
fn the_index_of_holds_is_built_for_holds_placed_before_the_upgrade() {
    use crate::domain::lifecycle::Hold;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let hold = |id: &str, tenant_wide: bool, review_at: Option<&str>| Hold {
        hold_id: id.into(),
        authority: "court".into(),
        reason: "case".into(),
        tenant_wide,
        placed_at: ts("2026-01-02T00:00:00Z"),
        review_at: review_at.map(ts),
        review_reported_at: None,
    };
    let mut r1 = resource("r1");
    r1.holds = vec![hold("h1", false, Some("2026-03-01T00:00:00Z")), hold("tw", true, None)];
    let mut w = WriteSet {
        tenants: vec![("t1".into(), TenantHolds { holds: vec![hold("tw", true, None)], released: vec![] })],
        ..Default::default()
    };
    w.put_resource(r1, None);
    store.commit(w).unwrap();
    let read = |store: &SledStore| {
        (
            store.holds(&HoldFilter::default(), None, 10).unwrap(),
            store.holds(&HoldFilter { authority: Some("court".into()), ..Default::default() }, None, 10).unwrap(),
            store.reviews_due(ts("2027-01-01T00:00:00Z"), 10).unwrap(),
            store.next_review_after(ts("2026-01-01T00:00:00Z")).unwrap(),
            store.hold_counts().unwrap(),
        )
    };
    let want = read(&store);
    assert_eq!(want.0.len(), 2, "the tenant-wide hold and r1's own");
    assert_eq!(want.4, HoldCounts { in_force: 2, review_due: 0 });
    // As a build of indexes version 1 left it.
    for prefix in [&b"k/"[..], b"a/", b"v/"] {
        for k in store.db.scan_prefix(prefix).keys() {
            store.db.remove(k.unwrap()).unwrap();
        }
    }
    store.db.remove(hold_index::HOLD_COUNTS_KEY).unwrap();
    store.db.insert(indexes::INDEXES_KEY, record::encode(&1u32)).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open(&dir);
    assert_eq!(read(&store), want);
    let marker: Option<u32> = store.get(indexes::INDEXES_KEY).unwrap();
    assert_eq!(marker, Some(indexes::INDEXES_VERSION), "built once: the marker is stored");
    drop(store);
    assert_eq!(read(&open(&dir)), want, "and read back after that");
}

/// What was committed and flushed is there after the database is
/// closed and opened again (as after a restart).
#[test]
fn flushed_commits_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut w =
        WriteSet { flags: vec![(Flag::Paused, true)], clock: Some(ts("2026-02-01T00:00:00Z")), ..Default::default() };
    w.put_resource(resource("r1"), Some(ts("2026-03-01T00:00:00Z")));
    store.commit(w).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = open(&dir);
    assert_eq!(store.resource("r1").unwrap(), Some(resource("r1")));
    assert_eq!(store.due(ts("2026-03-01T00:00:00Z"), 10).unwrap(), vec![(ts("2026-03-01T00:00:00Z"), "r1".into())]);
    assert!(store.flag(Flag::Paused).unwrap());
    assert_eq!(store.clock().unwrap(), Some(ts("2026-02-01T00:00:00Z")));
}

/// A second daemon on the same state dir is refused, with the words the
/// test harness (and an operator) recognises.
#[test]
fn a_second_open_is_refused_for_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir);
    let Err(e) = SledStore::open(&dir.path().join("db"), 1 << 20) else { panic!("a second open succeeded") };
    let text = e.to_string();
    assert!(text.starts_with("database error: ") && text.contains("could not acquire lock"), "{text}");
    assert!(std::error::Error::source(&e).is_some(), "the sled error is kept as the source");
}

/// A resource record of another version is an error naming the key,
/// never read as if it were this build's: a compact record of a newer
/// version (its leading byte past 3), and a JSON one claiming a version
/// other than 1.
#[test]
fn a_resource_record_of_an_unknown_version_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut w = WriteSet::default();
    w.put_resource(resource("r1"), None);
    store.commit(w).unwrap();
    let stored = store.db.get(b"r/r1").unwrap().unwrap();
    assert_eq!(stored[0], 2, "this build writes version 2 (3 only for a hold with a review date)");
    let mut v4 = stored.to_vec();
    v4[0] = 4;
    store.db.insert(b"r/r1", v4).unwrap();

    let e = store.resource("r1").unwrap_err();
    assert!(matches!(&e, StoreError::Decode { key, reason: RecordError::Version(4) } if key == "r/r1"), "{e:?}");
    assert_eq!(e.to_string(), "stored record r/r1 cannot be read: record version 4 is not supported by this build");
    // Nor is it read when every resource is visited (sweeps, forecast).
    assert!(matches!(store.for_each_resource(&mut |_| ()), Err(StoreError::Decode { .. })));
    assert!(matches!(store.resources_after(None, usize::MAX), Err(StoreError::Decode { .. })));
    // Metrics no longer visit records (issue 11: counters kept by each
    // commit), so they read nothing of it: the count is the one the
    // last commit left.
    assert_eq!(store.stats().unwrap().resources.get("active"), Some(&1));
    // Rewriting it needs its old index entry: refused too, nothing written.
    let mut w = WriteSet { flags: vec![(Flag::Paused, true)], ..Default::default() };
    w.put_resource(resource("r1"), None);
    assert!(matches!(store.commit(w), Err(StoreError::Decode { .. })));
    assert!(!store.flag(Flag::Paused).unwrap(), "a refused write set leaves nothing behind");

    let v1 = record::ResourceRecordV1 { v: 7, due: None, resource: resource("r1") };
    store.db.insert(b"r/r1", serde_json::to_vec(&v1).unwrap()).unwrap();
    assert!(matches!(store.resource("r1"), Err(StoreError::Decode { reason: RecordError::Version(7), .. })));
    store.db.insert(b"r/r1", &[] as &[u8]).unwrap();
    assert!(matches!(store.resource("r1"), Err(StoreError::Decode { .. })), "an empty value is no record");
    store.db.insert(b"e/e1", &b"\x03\x00\x1b\x00"[..]).unwrap();
    assert!(matches!(store.event("e1"), Err(StoreError::Decode { reason: RecordError::Version(3), .. })));
}

/// The migration path: records written by a build before the compact
/// encoding (JSON, version 1) read back as they were written, and the
/// next write of the resource stores it compact, its index entry moved
/// as for any record; event outcomes likewise.
#[test]
fn version_1_records_read_back_and_are_rewritten_compact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut r1 = resource("r1");
    r1.history.push(crate::domain::lifecycle::HistoryEntry {
        at: ts("2026-01-01T00:00:00Z"),
        what: "resource.created".into(),
        detail: "created (p, postpaid)".into(),
    });
    let due = ts("2026-03-01T00:00:00Z");
    let mut w = WriteSet::default();
    w.put_resource(r1.clone(), Some(due));
    store.commit(w).unwrap();
    // As the builds before wrote them (`record::encode` of these types).
    let v1 = record::ResourceRecordV1 { v: 1, due: Some(due), resource: r1.clone() };
    let old = serde_json::to_vec(&v1).unwrap();
    assert!(old.starts_with(br#"{"v":1,"due":"2026-03-01T00:00:00Z","resource":{"id":"r1","#));
    store.db.insert(b"r/r1", old.clone()).unwrap();
    store.db.insert(b"e/e1", &br#"{"status":"applied","resource":"r1"}"#[..]).unwrap();
    let data = serde_json::json!({"event_id": "e1", "type": "resource.created"});
    let audit = AuditRecord::seal(1, ts("2026-01-01T00:00:00Z"), "event.applied", Some("t1"), Some("r1"), data, "00");
    store.db.insert(record::outbox_key(1), serde_json::to_vec(&audit).unwrap()).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = open(&dir);
    assert_eq!(store.resource("r1").unwrap(), Some(r1.clone()));
    assert_eq!(store.resources_after(None, 10).unwrap(), vec![(r1.clone(), Some(due))]);
    let outcome = EventOutcome { status: "applied".into(), resource: Some("r1".into()) };
    assert_eq!(store.event("e1").unwrap(), Some(outcome.clone()));
    assert_eq!(store.outbox_after(0).unwrap(), vec![audit.clone()], "a JSON outbox record is replayed");

    let later = ts("2026-04-01T00:00:00Z");
    let next = AuditRecord::seal(2, later, "event.applied", Some("t1"), Some("r1"), serde_json::json!({}), &audit.hash);
    let mut w =
        WriteSet { events: vec![("e1".into(), outcome.clone())], audit: vec![next.clone()], ..Default::default() };
    w.put_resource(r1.clone(), Some(later));
    store.commit(w).unwrap();
    assert_eq!(store.db.get(record::outbox_key(2)).unwrap().unwrap()[0], 2);
    assert_eq!(store.outbox_after(0).unwrap(), vec![audit, next], "old and new, in seq order");
    let new = store.db.get(b"r/r1").unwrap().unwrap();
    assert_eq!(new[0], 2, "rewritten as version 2");
    assert!(new.len() * 4 < old.len(), "{} bytes compact, {} as JSON", new.len(), old.len());
    assert_eq!(store.db.get(b"e/e1").unwrap().unwrap()[0], 2);
    assert_eq!(store.resource("r1").unwrap(), Some(r1));
    assert_eq!(store.event("e1").unwrap(), Some(outcome));
    assert_eq!(store.due(later, 10).unwrap(), vec![(later, "r1".into())], "the old entry is gone");
}

/// Bytes that are not a record are an error too.
#[test]
fn a_corrupt_record_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.db.insert(b"e/e1", &b"{not json"[..]).unwrap();
    store.db.insert(b"f/paused", &b"1x"[..]).unwrap();
    assert!(matches!(store.event("e1"), Err(StoreError::Decode { reason: RecordError::Json(_), .. })));
    assert!(matches!(store.flag(Flag::Paused), Err(StoreError::Decode { .. })));
}

/// Issue 11: a commit's audit records go under a few outbox keys (chunks
/// keyed by their last seq), not one key each to insert and later remove;
/// single-record keys of older builds (JSON and v2) are read beside them,
/// in seq order, and trimmed alike.
#[test]
fn a_commits_audit_records_share_outbox_keys_beside_older_single_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let seal = |seq: u64, prev: &str| {
        let data = serde_json::json!({"event_id": format!("e{seq}"), "type": "resource.created"});
        AuditRecord::seal(seq, ts("2026-01-01T00:00:00Z"), "event.applied", Some("t1"), Some("r1"), data, prev)
    };
    // Seq 1 as version 1 wrote it (JSON), seq 2 as version 2 (one key each).
    let first = seal(1, "00");
    let second = seal(2, &first.hash);
    store.db.insert(record::outbox_key(1), serde_json::to_vec(&first).unwrap()).unwrap();
    store.db.insert(record::outbox_key(2), crate::store::compact::encode_audit(&second)).unwrap();
    let mut batch = vec![first, second];
    for seq in 3..=1002 {
        let prev = batch.last().unwrap().hash.clone();
        batch.push(seal(seq, &prev));
    }
    store.commit(WriteSet { audit: batch[2..].to_vec(), ..Default::default() }).unwrap();
    let keys = store.db.scan_prefix(b"o/").count();
    assert!((3..=2 + 1000 / 20).contains(&keys), "1,000 records under {keys} keys");
    assert_eq!(store.outbox_after(0).unwrap(), batch);
    store.flush().unwrap();
    drop(store);

    let store = open(&dir);
    assert_eq!(store.outbox_after(1).unwrap(), batch[1..]);
    store.commit(WriteSet { outbox_done_through: Some(500), ..Default::default() }).unwrap();
    assert_eq!(store.outbox_after(0).unwrap(), batch[500..]);
    store.commit(WriteSet { outbox_done_through: Some(1002), ..Default::default() }).unwrap();
    assert_eq!(store.db.scan_prefix(b"o/").count(), 0, "nothing left behind");
}
