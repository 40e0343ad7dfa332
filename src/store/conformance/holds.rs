//! The promises of the index of holds (issue 13), in the suite of
//! `conformance.rs`.

use super::*;
use crate::domain::lifecycle::Hold;
use crate::store::{HoldCounts, HoldEntry, HoldFilter, HoldKey};

/// A hold by `authority`, tenant-wide or not, with a review date or none.
pub(super) fn hold(hold_id: &str, authority: &str, tenant_wide: bool, review_at: Option<&str>) -> Hold {
    Hold {
        hold_id: hold_id.into(),
        authority: authority.into(),
        reason: format!("case {hold_id}"),
        tenant_wide,
        placed_at: ts("2026-01-02T00:00:00Z"),
        review_at: review_at.map(ts),
        review_reported_at: None,
    }
}

/// `r` with `holds`.
fn with_holds(mut r: Resource, holds: Vec<Hold>) -> Resource {
    r.holds = holds;
    r
}

/// Writes `tenant`'s tenant-wide holds.
fn put_tenant(store: &dyn Store, tenant: &str, holds: Vec<Hold>) {
    let w = WriteSet { tenants: vec![(tenant.into(), TenantHolds { holds, released: vec![] })], ..Default::default() };
    store.commit(w).expect("commit");
}

fn key(tenant: &str, resource: Option<&str>, hold_id: &str) -> HoldKey {
    HoldKey { tenant: tenant.into(), resource: resource.map(Into::into), hold_id: hold_id.into() }
}

fn keys(entries: &[HoldEntry]) -> Vec<HoldKey> {
    entries.iter().map(|e| e.key.clone()).collect()
}

fn filter(tenant: Option<&str>, authority: Option<&str>) -> HoldFilter {
    HoldFilter { tenant: tenant.map(Into::into), authority: authority.map(Into::into) }
}

/// Every page of [`Store::holds`] with `filter`, `limit` at a time, each
/// after the last key of the one before.
pub(super) fn paged(store: &dyn Store, filter: &HoldFilter, limit: usize) -> Vec<HoldEntry> {
    let mut seen = Vec::new();
    let mut after: Option<HoldKey> = None;
    loop {
        let page = store.holds(filter, after.as_ref(), limit).unwrap();
        assert!(page.len() <= limit, "a page holds at most the limit");
        let Some(last) = page.last() else { return seen };
        after = Some(last.key.clone());
        seen.extend(page);
    }
}

/// A resource's own holds and each tenant's holds are listed, once, in key
/// order (tenant, then resource with the tenant-wide holds first, then
/// hold id), as written; the copy of a tenant-wide hold a resource carries
/// is not another hold. A tenant or an authority narrows the list; pages
/// cover it once; a release takes the hold out.
pub(super) fn holds_are_listed_in_key_order_by_tenant_and_authority(store: &dyn Store) {
    let copy = hold("tw", "court", true, Some("2026-06-01T00:00:00Z"));
    put(store, with_holds(resource("a", "t1"), vec![hold("h1", "court", false, None), copy.clone()]), None);
    put(store, with_holds(resource("b", "t2"), vec![hold("h1", "regulator", false, None)]), None);
    put(store, with_holds(resource("c", "t1"), vec![copy.clone()]), None);
    put_tenant(store, "t1", vec![copy.clone()]);
    put_tenant(store, "t1-x", vec![hold("h0", "court", true, None)]);

    let all = store.holds(&HoldFilter::default(), None, 100).unwrap();
    let want = [key("t1", None, "tw"), key("t1", Some("a"), "h1"), key("t1-x", None, "h0"), key("t2", Some("b"), "h1")];
    assert_eq!(keys(&all), want);
    assert_eq!(all[0].hold, copy, "a hold reads back as written");
    assert_eq!(all[3].hold.authority, "regulator");
    assert_eq!(keys(&paged(store, &HoldFilter::default(), 1)), want);
    assert_eq!(keys(&store.holds(&HoldFilter::default(), None, 2).unwrap()), want[..2]);

    assert_eq!(keys(&store.holds(&filter(Some("t1"), None), None, 100).unwrap()), want[..2], "not t1-x's");
    let court = [want[0].clone(), want[1].clone(), want[2].clone()];
    assert_eq!(keys(&paged(store, &filter(None, Some("court")), 2)), court);
    assert_eq!(keys(&store.holds(&filter(None, Some("cour")), None, 100).unwrap()), [], "the authority exactly");
    assert_eq!(keys(&paged(store, &filter(Some("t1-x"), Some("court")), 1)), [want[2].clone()]);
    assert_eq!(keys(&store.holds(&filter(Some("t2"), Some("court")), None, 100).unwrap()), []);
    // After a key not stored (released meanwhile) the list goes on from
    // where it would be, with or without a filter.
    let gap = key("t1", Some("a"), "h0");
    assert_eq!(keys(&store.holds(&HoldFilter::default(), Some(&gap), 100).unwrap()), want[1..]);
    assert_eq!(keys(&store.holds(&filter(None, Some("court")), Some(&gap), 100).unwrap()), court[1..]);
    assert_eq!(keys(&store.holds(&filter(Some("t2"), None), Some(&gap), 100).unwrap()), [want[3].clone()]);
    assert_eq!(store.hold_counts().unwrap(), HoldCounts { in_force: 4, review_due: 0 });

    // Released: the resource's own hold, and the tenant-wide one (twice
    // in one write set: the last version is the one kept).
    put(store, with_holds(resource("a", "t1"), vec![copy.clone()]), None);
    let w = WriteSet {
        tenants: vec![
            ("t1".into(), TenantHolds { holds: vec![copy.clone(), hold("h9", "court", true, None)], released: vec![] }),
            ("t1".into(), TenantHolds::default()),
        ],
        ..Default::default()
    };
    store.commit(w).unwrap();
    let left = store.holds(&HoldFilter::default(), None, 100).unwrap();
    assert_eq!(keys(&left), [want[2].clone(), want[3].clone()]);
    assert_eq!(keys(&store.holds(&filter(None, Some("court")), None, 100).unwrap()), [want[2].clone()]);
    assert_eq!(store.hold_counts().unwrap(), HoldCounts { in_force: 2, review_due: 0 });
}

/// Review dates not yet reported are listed up to `now`, earliest first,
/// held to the millisecond rounded up (never early); the next one strictly
/// after `now` is found; a reported review, or the copy of a tenant-wide
/// hold, is not listed, and the reported ones are counted.
pub(super) fn reviews_due_lists_unreported_review_dates_earliest_first(store: &dyn Store) {
    put_tenant(store, "t1", vec![hold("a", "court", true, Some("2026-03-01T00:00:00Z"))]);
    let sub_ms = "2026-02-01T00:00:00.000400Z";
    put(store, with_holds(resource("r1", "t1"), vec![hold("b", "court", false, Some(sub_ms))]), None);
    let mut reported = hold("c", "court", false, Some("2026-01-15T00:00:00Z"));
    reported.review_reported_at = Some(ts("2026-01-15T00:00:01Z"));
    put(store, with_holds(resource("r2", "t1"), vec![reported]), None);
    put(store, with_holds(resource("r3", "t1"), vec![hold("a", "court", true, Some("2026-01-10T00:00:00Z"))]), None);

    let first = ts("2026-02-01T00:00:00.001Z");
    assert_eq!(store.reviews_due(ts("2026-01-31T00:00:00Z"), 10).unwrap(), []);
    assert_eq!(store.reviews_due(ts(sub_ms), 10).unwrap(), [], "rounded up: never reported early");
    assert_eq!(store.next_review_after(ts("2026-01-01T00:00:00Z")).unwrap(), Some(first));
    assert_eq!(store.reviews_due(first, 10).unwrap(), [(first, key("t1", Some("r1"), "b"))]);
    let later = ts("2026-04-01T00:00:00Z");
    let both = vec![(first, key("t1", Some("r1"), "b")), (ts("2026-03-01T00:00:00Z"), key("t1", None, "a"))];
    assert_eq!(store.reviews_due(later, 10).unwrap(), both);
    assert_eq!(store.reviews_due(later, 1).unwrap(), both[..1]);
    assert_eq!(store.next_review_after(first).unwrap(), Some(ts("2026-03-01T00:00:00Z")), "strictly after");
    assert_eq!(store.next_review_after(ts("2026-03-01T00:00:00Z")).unwrap(), None);
    assert_eq!(store.hold_counts().unwrap(), HoldCounts { in_force: 3, review_due: 1 });

    // Reported: out of the review index, into the count.
    let mut b = hold("b", "court", false, Some(sub_ms));
    b.review_reported_at = Some(later);
    put(store, with_holds(resource("r1", "t1"), vec![b]), None);
    assert_eq!(store.reviews_due(later, 10).unwrap(), both[1..]);
    assert_eq!(store.hold_counts().unwrap(), HoldCounts { in_force: 3, review_due: 2 });
}

/// Random holds for a resource or a tenant: none to two of three ids and
/// two authorities, some with review dates, some of those reported.
pub(super) fn random_holds(next: &mut impl FnMut(u64) -> u64, tenant_wide: bool) -> Vec<Hold> {
    let mut holds: Vec<Hold> = Vec::new();
    for _ in 0..next(3) {
        let id = format!("h{}", next(3));
        if holds.iter().any(|h| h.hold_id == id) {
            continue;
        }
        let review = (next(2) == 0).then(|| format!("2026-0{}-01T00:00:00.{:03}Z", 1 + next(8), next(1000)));
        let mut h = hold(&id, ["court", "court of appeal"][next(2) as usize], tenant_wide, review.as_deref());
        if h.review_at.is_some() && next(3) == 0 {
            h.review_reported_at = Some(ts("2026-09-01T00:00:00Z"));
        }
        holds.push(h);
    }
    holds
}

/// What the index of holds must equal: every resource's own holds and
/// every tenant's (of `tenants`), read one by one.
pub(super) type HoldIndexes = (Vec<HoldEntry>, Vec<(Timestamp, HoldKey)>, HoldCounts);

pub(super) fn recount_holds(store: &dyn Store, tenants: &[String]) -> HoldIndexes {
    use crate::store::hold_index;
    let mut entries = Vec::new();
    store.for_each_resource(&mut |r| entries.extend(hold_index::of_resource(&r))).expect("resources");
    for t in tenants {
        entries.extend(hold_index::of_tenant(t, &store.tenant_holds(t).expect("tenant holds")));
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut reviews: Vec<(Timestamp, HoldKey)> = entries
        .iter()
        .filter_map(|e| {
            let ms = hold_index::pending_review(&e.hold)?;
            Some((chrono::DateTime::from_timestamp_millis(ms).expect("in range"), e.key.clone()))
        })
        .collect();
    reviews.sort();
    let mut counts = HoldCounts::default();
    counts.tally(&entries, true);
    (entries, reviews, counts)
}

/// The index of holds as read: paged, every review, the counts; and, for
/// a tenant and an authority, the filtered list equals the recount
/// filtered.
pub(super) fn read_holds(store: &dyn Store, want: &HoldIndexes) -> HoldIndexes {
    for f in [filter(Some("t1"), None), filter(None, Some("court")), filter(Some("t2"), Some("court of appeal"))] {
        let filtered: Vec<HoldEntry> = want.0.iter().filter(|e| f.admits(e)).cloned().collect();
        assert_eq!(paged(store, &f, 3), filtered, "{f:?}");
    }
    (
        paged(store, &HoldFilter::default(), 4),
        store.reviews_due(ts("9999-01-01T00:00:00Z"), usize::MAX).unwrap(),
        store.hold_counts().unwrap(),
    )
}
