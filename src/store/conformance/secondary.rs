//! The promises of the indexes kept beside the deadline index (issue 11),
//! in the suite of `conformance.rs`.

use super::*;

/// `r` with a hold (`tenant_wide` as given).
pub(super) fn held(mut r: Resource, hold_id: &str) -> Resource {
    r.holds.push(crate::domain::lifecycle::Hold {
        hold_id: hold_id.into(),
        authority: "court".into(),
        reason: "case 1".into(),
        tenant_wide: false,
        placed_at: ts("2026-01-02T00:00:00Z"),
        review_at: None,
        review_reported_at: None,
    });
    r
}

/// `r` whose deletion started at `at`, `approved` by an operator or not.
pub(super) fn started(mut r: Resource, at: &str, approved: bool) -> Resource {
    r.deletion_started_at = Some(ts(at));
    r.guard_approved = approved;
    r
}

/// Pages of [`Store::due_before`], each after the last entry of the one
/// before, give every entry strictly before `until` once, in index order,
/// and none at or after it; a page stops at its limit.
pub(super) fn due_before_pages_through_the_index_once(store: &dyn Store) {
    for (id, due) in [("a", "2026-03-01T00:00:00Z"), ("b", "2026-02-01T00:00:00Z"), ("c", "2026-03-01T00:00:00Z")] {
        put(store, resource(id, "t1"), Some(due));
    }
    put(store, resource("d", "t1"), Some("2026-04-01T00:00:00Z"));
    put(store, resource("e", "t1"), Some("1969-12-31T00:00:00Z"));
    put(store, resource("f", "t1"), None);
    let until = ts("2026-04-01T00:00:00Z");
    let mut seen = Vec::new();
    let mut after: Option<(Timestamp, String)> = None;
    loop {
        let page = store.due_before(until, after.as_ref().map(|(t, id)| (*t, id.as_str())), 2).unwrap();
        assert!(page.len() <= 2, "a page holds at most the limit");
        let Some(last) = page.last().cloned() else { break };
        seen.extend(page);
        after = Some(last);
    }
    let want = vec![
        entry("1969-12-31T00:00:00Z", "e"),
        entry("2026-02-01T00:00:00Z", "b"),
        entry("2026-03-01T00:00:00Z", "a"),
        entry("2026-03-01T00:00:00Z", "c"),
    ];
    assert_eq!(seen, want, "d is due at `until` itself: left out");
    // After an entry no longer stored (rewritten meanwhile) it goes on from
    // where that entry would be.
    let page = store.due_before(until, Some((ts("2026-03-01T00:00:00Z"), "b")), 10).unwrap();
    assert_eq!(page, vec![entry("2026-03-01T00:00:00Z", "c")]);
    assert_eq!(store.due_before(ts("1969-12-31T00:00:00Z"), None, 10).unwrap(), vec![]);
}

/// Held resources not yet deleting, and every deleting one, are listed by
/// id; a hold's release or a deletion's end takes them out.
pub(super) fn held_or_deleting_lists_held_and_deleting_resources(store: &dyn Store) {
    put(store, held(resource("a", "t1"), "h1"), Some("2026-03-01T00:00:00Z"));
    put(store, held(resource_with("b", "t1", "retained", json!([])), "h1"), None);
    put(store, resource_with("c", "t1", "deleting", json!([copy("s", "deleting", true, false)])), None);
    put(store, held(resource_with("d", "t1", "deleting", json!([])), "h2"), None);
    put(store, held(resource_with("e", "t1", "deleted", json!([])), "h3"), None);
    put(store, held(resource_with("f", "t1", "purged", json!([])), "h3"), None);
    put(store, resource("g", "t2"), Some("2026-03-01T00:00:00Z"));
    assert_eq!(store.held_or_deleting(None, 10).unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(store.held_or_deleting(None, 2).unwrap(), ["a", "b"]);
    assert_eq!(store.held_or_deleting(Some("b"), 10).unwrap(), ["c", "d"]);
    assert_eq!(store.held_or_deleting(Some("bb"), 1).unwrap(), ["c"]);
    // The hold on `a` released; `c` deleted; `g` held.
    put(store, resource("a", "t1"), Some("2026-03-01T00:00:00Z"));
    put(store, resource_with("c", "t1", "deleted", json!([])), None);
    put(store, held(resource("g", "t2"), "h4"), None);
    assert_eq!(store.held_or_deleting(None, 10).unwrap(), ["b", "d", "g"]);
}

/// Unsettled resources are counted by product; purged ones with every
/// notice sent are settled and leave the count, which then drops the
/// product.
pub(super) fn products_in_use_counts_unsettled_resources(store: &dyn Store) {
    let of = |id: &str, product: &str, state: &str| {
        let mut r = resource_with(id, "t1", state, json!([]));
        r.product = product.into();
        r
    };
    assert!(store.products_in_use().unwrap().is_empty());
    put(store, of("a", "p", "active"), None);
    put(store, of("b", "p", "deleted"), None);
    put(store, of("c", "q", "purged"), None);
    put(store, of("d", "q", "retained"), None);
    let want: std::collections::BTreeMap<String, u64> = [("p".into(), 2), ("q".into(), 1)].into();
    assert_eq!(store.products_in_use().unwrap(), want);
    put(store, of("d", "q", "purged"), None);
    put(store, of("a", "p", "purged"), None);
    assert_eq!(store.products_in_use().unwrap(), [("p".to_string(), 1)].into());
}

/// Deletion starts not approved by an operator are listed from `since`
/// on, in time order; an approval or a rewrite moves them.
pub(super) fn deletions_started_after_lists_unapproved_starts(store: &dyn Store) {
    let deleting = |id| resource_with(id, "t1", "deleting", json!([]));
    put(store, started(deleting("a"), "2026-03-02T00:00:00Z", false), None);
    put(store, started(deleting("b"), "2026-03-01T00:00:00Z", false), None);
    put(store, started(deleting("c"), "2026-03-01T12:00:00Z", true), None);
    put(store, started(deleting("d"), "2026-02-01T00:00:00Z", false), None);
    put(store, deleting("e"), None);
    let at = |v: &[&str]| v.iter().map(|s| ts(s)).collect::<Vec<_>>();
    let since = ts("2026-02-15T00:00:00Z");
    assert_eq!(store.deletions_started_after(since).unwrap(), at(&["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"]));
    // Held to the millisecond, rounded up: never earlier than it was.
    put(store, started(deleting("f"), "2026-02-15T00:00:00.000400Z", false), None);
    let got = store.deletions_started_after(ts("2026-02-15T00:00:00.000300Z")).unwrap();
    assert_eq!(got[0], ts("2026-02-15T00:00:00.001Z"));
    assert_eq!(store.deletions_started_after(ts("2026-02-15T00:00:00.001Z")).unwrap().len(), 2, "f is not after");
    put(store, started(deleting("b"), "2026-03-01T00:00:00Z", true), None);
    put(store, deleting("f"), None);
    assert_eq!(store.deletions_started_after(since).unwrap(), at(&["2026-03-02T00:00:00Z"]));
}

/// A resource in a pseudo-random state for the secondary indexes: any
/// product of three, holds or none (its own, with review dates or not,
/// and copies of tenant-wide ones), a deletion start approved or not,
/// notices sent or not.
pub(super) fn random_indexed_resource(id: &str, next: &mut impl FnMut(u64) -> u64) -> (Resource, Option<Timestamp>) {
    let (mut r, due) = random_resource(id, next);
    r.product = format!("p{}", next(3));
    if next(3) == 0 {
        r.holds = super::holds::random_holds(next, false);
        r.holds.extend(super::holds::random_holds(next, true).into_iter().map(|mut h| {
            h.hold_id = format!("tw-{}", h.hold_id);
            h.review_reported_at = None;
            h
        }));
    }
    if next(2) == 0 {
        r = started(r, "2026-03-01T00:00:00Z", next(2) == 0);
        r.deletion_started_at = r.deletion_started_at.map(|t| t + chrono::Duration::minutes(next(1000) as i64));
    }
    if next(4) == 0 {
        r.arrears = Some(crate::domain::lifecycle::Arrears {
            started_at: ts("2026-01-01T00:00:00Z"),
            amount: None,
            currency: None,
            buffer: None,
            grace_ends_at: (next(2) == 0).then(|| ts("2026-01-04T00:00:00Z")),
            late_floor: None,
        });
    }
    if next(3) == 0 {
        r.notices.push(crate::domain::lifecycle::Notice {
            key: "k".into(),
            kind: crate::domain::lifecycle::NoticeKind::BufferStarted,
            due_at: ts("2026-01-01T00:00:00Z"),
            date: None,
            cause: None,
            offset_secs: None,
            sent_at: None,
            attempts: 0,
            next_attempt_at: None,
            superseded: false,
        });
    }
    (r, due)
}

/// What the secondary indexes must equal: the records, read one by one.
pub(super) type Indexes = (Vec<String>, std::collections::BTreeMap<String, u64>, Vec<Timestamp>, Vec<String>);

pub(super) fn recount_indexes(store: &dyn Store) -> Indexes {
    use crate::store::indexes;
    let (mut held, mut products, mut starts) = (Vec::new(), std::collections::BTreeMap::new(), Vec::new());
    let mut migrate = Vec::new();
    store
        .for_each_resource(&mut |r| {
            if indexes::needs_migration(&r) {
                migrate.push(r.id.clone());
            }
            if indexes::held_or_deleting(&r) {
                held.push(r.id.clone());
            }
            indexes::tally_product(&mut products, &r, true);
            starts.extend(
                indexes::guard_start(&r)
                    .map(|t| chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range")),
            );
        })
        .expect("resources");
    starts.sort();
    (held, products, starts, migrate)
}

/// The held-or-deleting index, the product counts, the deletion starts,
/// the records to migrate and the index of holds (listed, reviews due,
/// counts) equal a recount of the records after any mix of creations and
/// rewrites, one resource or several per commit, with tenants' holds
/// written among them (sometimes one tenant twice in a set).
pub(super) fn the_secondary_indexes_equal_a_recount_after_any_sequence_of_commits(store: &dyn Store) {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let read = |store: &dyn Store| {
        let since = ts("1970-01-01T00:00:00Z");
        (
            store.held_or_deleting(None, usize::MAX).unwrap(),
            store.products_in_use().unwrap(),
            store.deletions_started_after(since).unwrap(),
            store.needing_migration().unwrap(),
        )
    };
    let tenants: Vec<String> = (0..4).map(|i| format!("t{i}")).collect();
    let check = |store: &dyn Store, step: usize| {
        assert_eq!(read(store), recount_indexes(store), "after {step} commits");
        let want = super::holds::recount_holds(store, &tenants);
        assert_eq!(super::holds::read_holds(store, &want), want, "holds after {step} commits");
    };
    for step in 0..300 {
        let mut w = WriteSet::default();
        for _ in 0..=next(3) {
            let (r, due) = random_indexed_resource(&format!("r{}", next(40)), &mut next);
            w.put_resource(r, due);
        }
        for _ in 0..next(3) {
            let tenant = format!("t{}", next(4));
            let holds = crate::domain::lifecycle::TenantHolds {
                holds: super::holds::random_holds(&mut next, true),
                released: vec![],
            };
            w.tenants.push((tenant, holds));
        }
        store.commit(w).expect("commit");
        if step % 50 == 49 {
            check(store, step + 1);
        }
    }
    check(store, 300);
}

/// Records with arrears but no grace end (and no buffer yet), or with a
/// restricted copy without a limit after their deletion started, are
/// listed; filled in, they leave the list.
pub(super) fn needing_migration_lists_records_an_older_build_left_incomplete(store: &dyn Store) {
    let arrears = |grace: Option<&str>| crate::domain::lifecycle::Arrears {
        started_at: ts("2026-01-01T00:00:00Z"),
        amount: None,
        currency: None,
        buffer: None,
        grace_ends_at: grace.map(ts),
        late_floor: None,
    };
    let mut a = resource("a", "t1");
    a.arrears = Some(arrears(None));
    put(store, a.clone(), None);
    let mut b = resource("b", "t1");
    b.arrears = Some(arrears(Some("2026-01-04T00:00:00Z")));
    put(store, b, None);
    let restricted = json!([copy("snap", "restricted", false, false)]);
    put(store, started(resource_with("c", "t1", "deleted", restricted.clone()), "2026-02-01T00:00:00Z", false), None);
    put(store, resource_with("d", "t1", "deleted", restricted), None);
    assert_eq!(store.needing_migration().unwrap(), ["a", "c"]);
    a.arrears = Some(arrears(Some("2026-01-04T00:00:00Z")));
    put(store, a, None);
    let mut c = started(
        resource_with("c", "t1", "deleted", json!([copy("snap", "restricted", false, false)])),
        "2026-02-01T00:00:00Z",
        false,
    );
    c.copies[0].restricted_until = Some(ts("2026-03-01T00:00:00Z"));
    put(store, c, None);
    assert!(store.needing_migration().unwrap().is_empty());
}
